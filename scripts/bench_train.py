"""Training throughput against the model alone, measured in one run (issue 23).

full: ``Trainer.train_step`` on batches from ``train_loader``, as ``train.py`` trains
(the experiment's DataLoader workers, collate, ``trainer.num_threads``, channels-last, forward,
loss, backward, optimizer step); model-only: the same number of steps on those same batches,
held in memory, so nothing but the step runs. The ratio full / model-only says how much of the
model's own speed the data pipeline leaves it. Warm-up steps are not timed. Last, the renderer's
images per CPU second on one core for data=synth and data=synth_real (``--render-num 0`` skips).
One Markdown table, to paste into docs/RESULTS.md; run it on a machine with nothing else running.

``--sweep`` instead runs the bench once per lever against two cores shared by torch's threads
and the rendering workers (a fresh process each: OpenMP and malloc read their environment at
start) and prints one row per lever, each full figure also against the bound as configured.
``--variant NAME=OVERRIDES`` (repeatable) does the same for settings of the run itself (model,
memory format, data), each variant's overrides after the common ones, compared with the first.

    python scripts/bench_train.py experiment=crnn_ace_quick [--steps 100] [overrides ...]
    python scripts/bench_train.py experiment=cpu_synth --sweep
    python scripts/bench_train.py experiment=resnet2d_ace_quick \
        --variant "nchw=trainer.channels_last=false" --variant "nhwc=trainer.channels_last=true"
    OMP_WAIT_POLICY=passive python scripts/bench_train.py experiment=cpu_synth --worker-nice 19
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator

import torch
from omegaconf import DictConfig

from ace_str.build.config import compose_config
from ace_str.build.data import synth_dataset
from ace_str.build.loaders import train_loader
from ace_str.build.models import build_charset
from ace_str.build.transform import build_transform
from ace_str.data.synth.rate import render_rate
from ace_str.engine.trainer import Trainer

RENDER_DATA = ("synth", "synth_real")
FULL, MODEL = "full pipeline (images/s)", "model-only bound (images/s)"
# --sweep: name, environment, extra arguments. OpenMP threads that spin at barriers (libgomp's
# default) keep both cores busy, so a worker can only render by preempting one of them.
LEVERS: list[tuple[str, dict[str, str], list[str]]] = [
    ("as configured", {}, []),
    ("OMP_WAIT_POLICY=passive", {"OMP_WAIT_POLICY": "passive"}, []),
    ("worker nice 19", {}, ["--worker-nice", "19"]),
    ("passive + worker nice 19", {"OMP_WAIT_POLICY": "passive"}, ["--worker-nice", "19"]),
    ("prefetch 8", {}, ["--prefetch", "8"]),
    ("trainer.num_threads=1", {}, ["trainer.num_threads=1"]),
    (
        "malloc keeps freed memory",
        {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "2147483647"},
        [],
    ),
]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def present(batches: Iterable) -> Iterator:
    """Batches with at least one sample (the collator gives None when all were skipped)."""
    return (batch for batch in batches if batch is not None)


def timed_steps(trainer: Trainer, batches: Iterator, warmup: int, steps: int, keep=None) -> float:
    """Seconds of ``steps`` train steps after ``warmup`` untimed ones; appends each timed batch
    to ``keep`` when given."""
    for _ in range(warmup):
        trainer.train_step(next(batches))
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        trainer.train_step(batch)
        if keep is not None:
            keep.append(batch)
    return time.perf_counter() - start


def _lower_priority(niceness: int, worker_id: int) -> None:
    os.nice(niceness)


def pipeline_vs_model(
    cfg: DictConfig, warmup: int, steps: int, worker_nice: int | None, prefetch: int | None
) -> tuple[float, float, str]:
    """(full seconds, model-only seconds, loader description) for ``steps`` steps each."""
    with tempfile.TemporaryDirectory(prefix="bench_train_") as out:
        trainer = Trainer(cfg, out)
        trainer.model.train()
        loader = train_loader(trainer.train_set, cfg, trainer.charset, trainer.shuffle, 0)
        # levers to measure, set on the loader train_loader built (both stay None by default)
        if worker_nice is not None and loader.num_workers > 0:
            loader.worker_init_fn = functools.partial(_lower_priority, worker_nice)
        if prefetch is not None and loader.num_workers > 0:
            loader.prefetch_factor = prefetch
        batches = iter(loader)
        held: list = []
        full = timed_steps(trainer, present(batches), warmup, steps, keep=held)
        del batches  # stops the workers before the model runs alone
        model_only = timed_steps(trainer, itertools.cycle(held), warmup, steps)
    described = (
        f"batch {cfg.data.batch_size}, {loader.num_workers} worker(s)"
        + (f" (prefetch {loader.prefetch_factor})" if loader.num_workers else "")
        + (f", worker nice {worker_nice}" if worker_nice is not None else "")
        + (", channels_last" if cfg.trainer.channels_last else "")
    )
    return full, model_only, described


def renderer_rates(overrides: list[str], num: int, warmup: int) -> dict[str, float]:
    """Images per CPU second of each data config's renderer (resize included), one core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker's setting
    rates = {}
    try:
        kept = [o for o in overrides if not o.lstrip("+~").startswith("data=")]
        for name in RENDER_DATA:
            cfg = compose_config("train", [*kept, f"data={name}"])
            transform = build_transform(cfg)
            dataset = synth_dataset(
                cfg.data.synth, build_charset(cfg), transform, length=warmup + num
            )
            rates[name] = render_rate(dataset, num, warmup)
    finally:
        torch.set_num_threads(threads)
    return rates


def table_rows(text: str) -> dict[str, str]:
    """measure -> value from the two-column table this script prints."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def sweep(
    overrides: list[str],
    steps: int,
    warmup: int,
    levers: list[tuple[str, dict[str, str], list[str]]] | None = None,
) -> None:
    """One fresh process per lever (LEVERS unless given); a table of their figures."""
    results = []
    for name, env, extra in LEVERS if levers is None else levers:
        command = [sys.executable, __file__, *overrides, *extra]
        command += ["--steps", str(steps), "--warmup", str(warmup), "--render-num", "0"]
        done = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name}: {done.stderr.strip()[-2000:]}")
        rows = table_rows(done.stdout)
        results.append((name, float(rows[FULL]), float(rows[MODEL])))
    bound = results[0][2]
    print(
        f"| lever ({' '.join(overrides)}) | full (images/s) | model-only (images/s) | ratio "
        "| full / bound as configured |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, full, model in results:
        print(f"| {name} | {full:.1f} | {model:.1f} | {full / model:.3f} | {full / bound:.3f} |")
    print(f"machine: {cpu_model()}, {usable_cores()} cores; {steps} timed steps after {warmup}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="+", help="experiment=NAME and Hydra overrides")
    parser.add_argument("--steps", type=int, default=60, help="timed steps of each measure")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before each")
    parser.add_argument("--render-num", type=int, default=400, help="renderer samples (0: skip)")
    parser.add_argument("--render-warmup", type=int, default=200)
    parser.add_argument("--worker-nice", type=int, default=None, help="lever: os.nice in workers")
    parser.add_argument("--prefetch", type=int, default=None, help="lever: prefetch factor")
    parser.add_argument("--sweep", action="store_true", help="one run per lever (LEVERS)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=OVERRIDES",
        help="one run per variant: its space-separated overrides after the common ones",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be positive and --warmup not negative")
    if args.sweep and args.variant:
        parser.error("--sweep and --variant each compare runs; give one of them")
    if args.variant:
        variants = [v.partition("=") for v in args.variant]
        bad = [
            v for v, (name, eq, _) in zip(args.variant, variants, strict=True) if not (name and eq)
        ]
        if bad:
            parser.error(f"--variant wants NAME=OVERRIDES, not {bad}")
        levers = [(name, {}, rest.split()) for name, _, rest in variants]
        sweep(args.overrides, args.steps, args.warmup, levers)
        return
    if args.sweep:
        sweep(args.overrides, args.steps, args.warmup)
        return

    cfg = compose_config("train", args.overrides)
    # a one-cycle schedule refuses to step past trainer.max_steps
    cfg.trainer.max_steps = max(cfg.trainer.max_steps or 0, 2 * (args.warmup + args.steps))
    full, model_only, loader = pipeline_vs_model(
        cfg, args.warmup, args.steps, args.worker_nice, args.prefetch
    )
    images = args.steps * cfg.data.batch_size
    rows = [
        (FULL, f"{images / full:.1f}"),
        (MODEL, f"{images / model_only:.1f}"),
        ("ratio full / model-only", f"{model_only / full:.3f}"),
    ]
    if args.render_num > 0:
        rates = renderer_rates(args.overrides, args.render_num, args.render_warmup)
        for name, rate in rates.items():
            rows.append((f"renderer data={name} (images/s per core)", f"{rate:.0f}"))
    rows += [
        ("machine", f"{cpu_model()}, {usable_cores()} cores"),
        ("torch", f"{torch.__version__}, {torch.get_num_threads()} threads"),
        ("loader", loader),
        ("steps", f"{args.steps} timed after {args.warmup} warm-up, each measure"),
    ]
    print(f"| {cfg.name}: {' '.join(args.overrides)} | value |")
    print("|---|---:|")
    for measure, value in rows:
        print(f"| {measure} | {value} |")


if __name__ == "__main__":
    main()
