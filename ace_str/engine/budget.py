"""A time budget turned into a step count, so a schedule sized for one machine ends on any.

The same recipe trains 3x faster on one CPU than on another; with a fixed ``max_steps`` the slow
machine's wall-clock guard cuts the schedule short (a mixed-in source never joins, the one-cycle
rate never anneals). ``trainer.budget_minutes`` instead times the real pipeline for a few steps
before training, picks the number of steps that fits, and keeps that number for the whole run
(stored in the checkpoint): the run is then the run ``trainer.max_steps=N`` would give.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


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
