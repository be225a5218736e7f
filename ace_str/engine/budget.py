"""A time budget turned into a step count, so a schedule sized for one machine ends on any.

The same recipe trains 3x faster on one CPU than on another; with a fixed ``max_steps`` the slow
machine's wall-clock guard cuts the schedule short (a mixed-in source never joins, the one-cycle
rate never anneals). ``trainer.budget_minutes`` instead times the real pipeline for a few steps
before training, picks the number of steps that fits, and keeps that number for the whole run
(stored in the checkpoint): the run is then the run ``trainer.max_steps=N`` would give.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ace_str.build.checkpoint import rng_state, set_rng_state
from ace_str.build.loaders import PREFETCH_FACTOR, train_loader
from ace_str.engine import distributed

if TYPE_CHECKING:
    from ace_str.engine.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepCosts:
    """Seconds measured by the probe: one training step (data included), one validation pass
    over every validation set, one checkpoint save."""

    step: float
    validation: float
    save: float


def run_seconds(steps: int, costs: StepCosts, val_every: int, ckpt_every: int) -> float:
    """What ``steps`` training steps cost: the steps, a validation every ``val_every`` steps
    and at the end, a save every ``ckpt_every`` steps and at the end."""
    validations = math.ceil(steps / val_every) if steps else 0
    saves = steps // ckpt_every + 1
    return steps * costs.step + validations * costs.validation + saves * costs.save


def plan_steps(
    seconds: float, costs: StepCosts, val_every: int, ckpt_every: int, min_steps: int = 1
) -> int:
    """The most steps whose `run_seconds` fits in ``seconds`` (at least ``min_steps``)."""
    if costs.step <= 0:
        raise ValueError(f"a training step must take time, got {costs.step} s")
    per_step = costs.step + costs.validation / val_every + costs.save / ckpt_every
    steps = max(int((seconds - costs.validation - costs.save) / per_step), 0)
    while run_seconds(steps + 1, costs, val_every, ckpt_every) <= seconds:  # the estimate is
        steps += 1  # off by the rounding of validations and saves; step to the exact answer
    while steps > 0 and run_seconds(steps, costs, val_every, ckpt_every) > seconds:
        steps -= 1
    return max(steps, min_steps)


def measure_costs(
    batches: Iterator[Any],
    train_step: Callable[[Any], Any],
    validate: Callable[[], Any],
    save: Callable[[], Any],
    warmup_steps: int,
    probe_steps: int,
    prefetched: int = 0,
) -> StepCosts:
    """Times ``probe_steps`` steps of the real pipeline (waiting for data included) after
    ``warmup_steps`` untimed ones (JIT compilation), then one validation and one save. The
    caller undoes what the steps changed.

    The ``prefetched`` batches the loader's workers may hold ready are drawn and dropped before
    the clock starts: served from a full queue, the probe would time the model alone (the
    workers idle while their queue is full) and plan 15-20% too many steps (measured).
    """
    if probe_steps < 1:
        raise ValueError(f"trainer.budget_probe_steps must be at least 1, got {probe_steps}")
    for _ in range(warmup_steps):
        train_step(next(batches))
    for _ in range(prefetched):
        next(batches)
    start = time.perf_counter()
    for _ in range(probe_steps):
        train_step(next(batches))
    step = (time.perf_counter() - start) / probe_steps
    start = time.perf_counter()
    validate()
    validation = time.perf_counter() - start
    start = time.perf_counter()
    save()
    return StepCosts(step, validation, time.perf_counter() - start)


def plan(trainer: Trainer) -> None:
    """Sizes ``trainer``'s ``max_steps`` to ``trainer.budget_minutes``: a probe of the real
    pipeline, whose updates are then undone, so the run equals ``trainer.max_steps=N`` exactly.
    """
    t, tcfg, data = trainer, trainer.tcfg, trainer.cfg.data
    saved = (
        copy.deepcopy(t.model.state_dict()),
        copy.deepcopy(t.optimizer.state_dict()),
        copy.deepcopy(t.precision.scaler.state_dict()),
        rng_state(),
        copy.deepcopy(t.average.state_dict()) if t.average is not None else None,
    )
    world = t.dist.world_size
    start = t.batches_drawn * data.batch_size * world
    loader = train_loader(t.train_set, t.cfg, t.charset, t.shuffle, start, t.dist.rank, world)
    steps = t.step_inputs(loader)  # whole optimizer steps: trainer.accumulate batches

    def validate() -> None:  # a validation pass as the trainer makes it, unlogged
        if t.dist.is_main:
            for _ in t.validation.scores(t.inference_model):
                pass

    t.model.train()
    t.probing = True  # averages every probe step, to time the update
    try:
        costs = measure_costs(
            steps,
            t.train_step,
            validate,
            lambda: torch.save(t.checkpoints.state_dict(), io.BytesIO()),
            int(tcfg.budget_warmup_steps),
            int(tcfg.budget_probe_steps),
            -(-PREFETCH_FACTOR * data.num_workers // t.accumulate),
        )
    finally:
        t.probing = False
    del steps, loader  # stops the probe's workers
    t.model.load_state_dict(saved[0])
    t.optimizer.load_state_dict(saved[1])
    t.precision.scaler.load_state_dict(saved[2])
    set_rng_state(saved[3])
    if t.average is not None:
        t.average.load_state_dict(saved[4])
    t.accounting.finite()
    left = 60 * float(tcfg.budget_minutes) * (1 - float(tcfg.budget_margin))
    left -= time.monotonic() - t.started_at
    total = t.step + plan_steps(left, costs, tcfg.val_every, tcfg.ckpt_every)
    total = distributed.rank0_value(total, t.dist, t.device)
    t.set_max_steps(total)
    log.info(
        "trainer.budget_minutes=%s: a step takes %.3f s (%.0f images/s), a validation "
        "%.1f s, a save %.2f s; %.1f s went to setup and the probe -> max_steps=%d",
        tcfg.budget_minutes,
        costs.step,
        data.batch_size * world / costs.step,
        costs.validation,
        costs.save,
        time.monotonic() - t.started_at,
        total,
    )
