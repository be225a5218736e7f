"""Training curves of one or more runs, from their TensorBoard logs, as one PNG.

    python scripts/plot_curves.py outputs/cpu_synth/<run> outputs/cpu_synth_real/<run> \
        --out docs/figures/cpu_recipes.png

Panels: the training loss, ACE's KL term (0 at a perfect count fit) where the run logged it,
and word accuracy on every validation set the run logged, against the training step. A run
is labelled by its folder (``label=path`` names it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no GUI backend

from ace_str.experiments import read_curves, save_figure

PANELS = (("train/loss", "training loss"), ("train/ace_kl", "ACE KL term (training)"))


def load(spec: str) -> tuple[str, dict[str, list[list[float]]]]:
    """``label=path`` or ``path``: tag -> [[step, value]] for the scalars plotted."""
    label, _, path = spec.rpartition("=")
    run = Path(path)
    logs = run / "tensorboard"
    if not logs.is_dir():
        raise FileNotFoundError(f"{run}: no tensorboard/ folder (is this a run folder?)")
    curves = read_curves(logs, prefix="")
    return label or run.name, curves


def plot(runs: list[tuple[str, dict]], out: Path) -> Path:
    """One panel per training scalar logged, and one for validation word accuracy."""
    panels = [(tag, title) for tag, title in PANELS if any(tag in c for _, c in runs)]
    fig = Figure(figsize=(5 * (len(panels) + 1), 4))
    axes = fig.subplots(1, len(panels) + 1, squeeze=False)[0]
    for ax, (tag, title) in zip(axes, panels, strict=False):
        for label, curves in runs:
            points = curves.get(tag, [])
            ax.plot([s for s, _ in points], [v for _, v in points], label=label, linewidth=1)
        ax.set(title=title, xlabel="training step")
    ax = axes[-1]
    for label, curves in runs:
        for tag, points in sorted(curves.items()):
            if tag.startswith("val/") and tag.endswith("/word_accuracy"):
                name = tag.split("/")[1]
                steps, values = [s for s, _ in points], [100 * v for _, v in points]
                ax.plot(steps, values, marker="o", markersize=3, label=f"{label}: {name}")
    ax.set(title="validation word accuracy (%)", xlabel="training step")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders (holding tensorboard/), or label=path")
    parser.add_argument("--out", type=Path, default=Path("outputs/curves.png"))
    args = parser.parse_args(argv)
    try:
        runs = [load(spec) for spec in args.runs]
    except FileNotFoundError as error:
        print(f"plot_curves: {error}", file=sys.stderr)
        return 1
    print(f"saved {plot(runs, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
