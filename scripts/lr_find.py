"""LR range test on an experiment's real pipeline: the rate grows exponentially from --min-lr
to --max-lr over --steps optimizer steps; prints a Markdown table of rate against loss and the
suggested rate (steepest descent of the smoothed loss), and plots the curve.

    python scripts/lr_find.py experiment=crnn_ace_quick
    python scripts/lr_find.py experiment=cpu_synth --steps 200 --max-lr 0.1 --out lr.png

Pick a rate somewhat below the suggestion for a constant schedule; one-cycle's peak
(optimizer.lr) may sit nearer the bottom of the curve.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: nothing global to close

from ace_str.build.config import compose_config
from ace_str.build.loaders import train_loader
from ace_str.engine.lr_find import LrPoint, lr_range_test, suggest_lr
from ace_str.engine.trainer import Trainer

log = logging.getLogger("lr_find")


def plot(points: list[LrPoint], suggested: float, title: str, path: str | Path) -> Path:
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot([p.lr for p in points], [p.loss for p in points], alpha=0.3, label="loss")
    ax.plot([p.lr for p in points], [p.smoothed for p in points], label="smoothed")
    ax.axvline(suggested, color="red", linestyle="--", label=f"suggested {suggested:.2g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title)
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="+", help="experiment=NAME and Hydra overrides")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps of the test")
    parser.add_argument("--min-lr", type=float, default=1e-6)
    parser.add_argument("--max-lr", type=float, default=1.0)
    parser.add_argument("--smoothing", type=float, default=0.98, help="loss EMA factor")
    parser.add_argument("--diverge", type=float, default=4.0, help="stop at this x best loss")
    parser.add_argument("--rows", type=int, default=20, help="table rows")
    parser.add_argument("--out", default="outputs/lr_find.png", help="the plot (PNG)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    cfg = compose_config("train", [*args.overrides, "trainer.budget_minutes=null"])
    with tempfile.TemporaryDirectory(prefix="lr_find_") as out:
        trainer = Trainer(cfg, out)
        loader = train_loader(trainer.train_set, cfg, trainer.charset, trainer.shuffle, 0)
        steps = trainer.step_inputs(loader)
        points = lr_range_test(
            trainer, steps, args.min_lr, args.max_lr, args.steps, args.smoothing, args.diverge
        )
        del steps, loader  # stops the workers
    if len(points) < args.steps:
        log.info("stopped after %d of %d steps: the loss diverged", len(points), args.steps)
    suggested = suggest_lr(points)
    path = plot(points, suggested, f"{cfg.name}: LR range test", args.out)
    shown = points[:: max(1, len(points) // args.rows)]
    print(f"| lr ({cfg.name}) | loss | smoothed loss |")
    print("|---:|---:|---:|")
    for p in shown:
        print(f"| {p.lr:.3g} | {p.loss:.4f} | {p.smoothed:.4f} |")
    print(f"\nsuggested lr (steepest descent): {suggested:.3g}; plot: {path}")


if __name__ == "__main__":
    main()
