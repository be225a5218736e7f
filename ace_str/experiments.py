"""Shared by the reproduction scripts (Table 1, Fig. 3, Fig. 4): compose a training config, train
one run in-process, evaluate its best checkpoint on the benchmarks, read its validation curves
from TensorBoard, and draw the figures. Runs go one after another, never in parallel, so each
gets the whole CPU and their budgets compare."""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing global to close
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ace_str.build.config import compose_config
from ace_str.engine.pretrain import STAGE_DIR, after_pretrain, pretrain_config
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.run import evaluate_checkpoint

log = logging.getLogger(__name__)

# crnn_ace_quick on the shared 2-core CPU: 2400 steps of 64 in 13.9 minutes, validation included
STEPS_PER_MINUTE = 170
SYNTH_SET = "synth_val"
# benchmark registry names -> the paper's column names (one column per benchmark, any version)
COLUMN_OF = {
    "IIIT5k_3000": "IIIT5K",
    "SVT_647": "SVT",
    "IC03_860": "IC03",
    "IC03_867": "IC03",
    "IC13_857": "IC13",
    "IC13_1015": "IC13",
    "IC15_1811": "IC15",
    "IC15_2077": "IC15",
    "SVTP_645": "SVTP",
    "CUTE80_288": "CUTE80",
}


def budget_parser(
    description: str, minutes: float, eval_minutes: float, val_default: str, out: str
) -> argparse.ArgumentParser:
    """The options every reproduction script shares: the CPU budget, seed, data and output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--minutes-per-run",
        type=float,
        default=minutes,
        help="whole budget of one run, evaluation included",
    )
    parser.add_argument(
        "--eval-minutes",
        type=float,
        default=eval_minutes,
        help="part of --minutes-per-run kept for startup and evaluation",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default: as many as the training minutes allow on this machine, "
        "trainer.budget_minutes)",
    )
    parser.add_argument(
        "--val-every",
        type=int,
        default=None,
        help=f"validation interval in steps (default: {val_default})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--benchmarks",
        default="../shared/data/benchmarks",
        help="benchmark root; skipped with a note when absent",
    )
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="extra Hydra override for every run (repeatable), e.g. data.train_roots=[...]",
    )
    return parser


def budget_steps(
    train_minutes: float, steps_per_minute: float = STEPS_PER_MINUTE, headroom: float = 0.9
) -> int:
    """Steps that fit ``train_minutes`` at the measured CPU rate, with ``headroom`` so that the
    one-cycle schedule ends before ``trainer.max_minutes`` cuts a slower run short."""
    return max(1, int(train_minutes * steps_per_minute * headroom))


def length_overrides(steps: int | None, minutes: float) -> list[str]:
    """A run of exactly ``steps`` steps when given, else as many as ``minutes`` allow on this
    machine (``trainer.budget_minutes``); ``minutes`` also guards both."""
    if steps:
        return [
            f"trainer.max_steps={steps}",
            "trainer.budget_minutes=null",
            f"trainer.max_minutes={minutes}",
        ]
    return [f"trainer.budget_minutes={minutes}", f"trainer.max_minutes={minutes}"]


@dataclass
class RunResult:
    """One training run: what it reached on synthetic validation and on the benchmarks."""

    label: str
    output_dir: str
    steps: int  # steps actually trained (max_minutes may stop a run early)
    minutes: float  # training wall time
    synth_accuracy: float  # best synthetic validation word accuracy (that of best.ckpt)
    batch_size: int
    curves: dict[str, list[list[float]]] = field(default_factory=dict)  # tag -> [[step, value]]
    benchmarks: dict[str, float] = field(default_factory=dict)  # column -> word accuracy
    params: dict[str, str] = field(default_factory=dict)  # e.g. head, shuffle ratio

    @property
    def best_checkpoint(self) -> Path:
        return Path(self.output_dir) / "best.ckpt"


def train_run(label: str, overrides: Sequence[str], output_dir: str | Path) -> RunResult:
    """Train one config in this process (Trainer, as train.py does) and collect its curves."""
    cfg = compose_config("train", overrides)
    log.info("%s: training (%s) into %s", label, " ".join(overrides), output_dir)
    start = time.perf_counter()
    stage = pretrain_config(cfg)
    if stage is not None:  # as train.py: the pretrain stage first, then the run from its weights
        Trainer(stage, Path(output_dir) / STAGE_DIR).fit()
        cfg = after_pretrain(cfg, Path(output_dir) / STAGE_DIR)
    trainer = Trainer(cfg, output_dir)
    trainer.fit()
    minutes = (time.perf_counter() - start) / 60
    best = trainer.best if math.isfinite(trainer.best) else float("nan")
    log.info(
        "%s: %d steps in %.1f min, best synthetic accuracy %.4f", label, trainer.step, minutes, best
    )
    curves = read_curves(Path(output_dir) / "tensorboard")
    return RunResult(
        label, str(output_dir), trainer.step, minutes, best, cfg.data.batch_size, curves
    )


def read_curves(tensorboard_dir: str | Path, prefix: str = f"val/{SYNTH_SET}/") -> dict:
    """Scalar series under ``prefix`` from the run's event files: metric -> [[step, value]]."""
    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = [t for t in events.Tags().get("scalars", []) if t.startswith(prefix)]
    return {t[len(prefix) :]: [[e.step, e.value] for e in events.Scalars(t)] for t in sorted(tags)}


def evaluate_run(
    result: RunResult,
    benchmark_root: str | Path,
    benchmarks: str | Sequence[str] = "all_found",
) -> None:
    """Word accuracy of the run's best.ckpt on each benchmark found, into ``result.benchmarks``
    (standard protocol; tables, predictions and worst-error grids go next to the checkpoint)."""
    cfg = compose_config("evaluate", ["checkpoint=unset", "data.root=unset"])
    cfg.checkpoint = str(result.best_checkpoint)
    cfg.data.root = str(benchmark_root)
    cfg.benchmarks = benchmarks if isinstance(benchmarks, str) else list(benchmarks)
    rows = evaluate_checkpoint(cfg)
    for name, row in rows.items():
        if name not in ("weighted mean", "plain mean"):
            result.benchmarks[COLUMN_OF.get(name, name)] = row["word_accuracy"]


def benchmarks_present(root: str | Path | None) -> bool:
    """Whether ``root`` exists; when it does not, say that evaluation is skipped."""
    if root and Path(root).is_dir():
        return True
    log.warning("benchmark folder %s not found: benchmark evaluation skipped", root)
    return False


def percent(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def save_results(results: Sequence[RunResult], path: Path, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**extra, "runs": [asdict(r) for r in results]}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def save_figure(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_error_curves(results: Sequence[RunResult], path: Path) -> Path:
    """Fig. 3: word and character error rate on synthetic validation against training step."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, (metric, title) in zip(
        axes, (("word_accuracy", "word error rate"), ("cer", "character error rate")), strict=True
    ):
        for result in results:
            points = result.curves.get(metric, [])
            steps = [s for s, _ in points]
            values = [1 - v if metric == "word_accuracy" else v for _, v in points]
            ax.plot(steps, values, marker="o", markersize=3, label=result.label)
        ax.set_xlabel("training step")
        ax.set_ylabel(title)
        ax.set_title(f"{title} (synthetic validation)")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def plot_vs_ratio(series: dict[str, dict[str, list[tuple[float, float]]]], path: Path) -> Path:
    """Fig. 4: accuracy against label shuffle ratio, one line per method, one panel per
    measure (``series``: measure -> method -> [(ratio, accuracy)])."""
    measures = [m for m, lines in series.items() if any(lines.values())]
    fig = Figure(figsize=(5 * max(1, len(measures)), 4))
    axes = fig.subplots(1, max(1, len(measures)), squeeze=False)[0]
    for ax, measure in zip(axes, measures, strict=False):
        for method, points in series[measure].items():
            points = sorted(points)
            ax.plot([r for r, _ in points], [100 * a for _, a in points], marker="o", label=method)
        ax.set_xlabel("label shuffle ratio")
        ax.set_ylabel("word accuracy (%)")
        ax.set_title(measure)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)
