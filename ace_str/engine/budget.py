"""A time budget turned into a step count, so a schedule sized for one machine ends on any.

The same recipe trains 3x faster on one CPU than on another; with a fixed ``max_steps`` the slow
machine's wall-clock guard cuts the schedule short (a mixed-in source never joins, the one-cycle
rate never anneals). ``trainer.budget_minutes`` instead times the real pipeline for a few steps
before training, picks the number of steps that fits, and keeps that number for the whole run
(stored in the checkpoint): the run is then the run ``trainer.max_steps=N`` would give.

A 30-step probe cannot see how a shared machine's speed wanders over an hour (on a 2-vCPU
instance the same run trained 84-114 images/s from one minute to the next, and whole runs
went 9-16% slower or 12% faster than their probes). ``trainer.budget_checks`` therefore
re-times the run at a few fractions of it, from the steps, validations and saves since the
last measurement, and re-sizes the rest when the plan is off by more than ``REPLAN_TOLERANCE``:
the schedule, the sources that join at a fraction and weight averaging follow the new count, so
the run still anneals and ends within its budget. Such a run no longer equals a fixed
``max_steps`` run (its schedule changed length on the way); with ``budget_checks=[]`` it does.
"""

from __future__ import annotations

import copy
import io
import logging
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


# A re-timed plan replaces the current one only when the step counts differ by more than this
# share: smaller differences are the timer's noise, and each change moves the schedule a little.
REPLAN_TOLERANCE = 0.02


def run_seconds(
    steps: int, costs: StepCosts, val_every: int, ckpt_every: int, start: int = 0
) -> float:
    """What training steps ``start + 1 .. start + steps`` cost, when they end the run: the
    steps, a validation at each multiple of ``val_every`` and at the end, a save at each
    multiple of ``ckpt_every`` and at the end."""
    end = start + steps
    validations = (end // val_every - start // val_every + (end % val_every > 0)) if steps else 0
    saves = end // ckpt_every - start // ckpt_every + 1
    return steps * costs.step + validations * costs.validation + saves * costs.save


def plan_steps(
    seconds: float,
    costs: StepCosts,
    val_every: int,
    ckpt_every: int,
    min_steps: int = 1,
    start: int = 0,
) -> int:
    """The most steps after step ``start`` whose `run_seconds` fits in ``seconds`` (at least
    ``min_steps``)."""
    if costs.step <= 0:
        raise ValueError(f"a training step must take time, got {costs.step} s")

    def cost(steps: int) -> float:
        return run_seconds(steps, costs, val_every, ckpt_every, start)

    per_step = costs.step + costs.validation / val_every + costs.save / ckpt_every
    steps = max(int((seconds - costs.validation - costs.save) / per_step), 0)
    while cost(steps + 1) <= seconds:  # the estimate is off by the rounding of
        steps += 1  # validations and saves; step to the exact answer
    while steps > 0 and cost(steps) > seconds:
        steps -= 1
    return max(steps, min_steps)


@dataclass
class Plan:
    """What a budget run plans with: the costs last measured (the probe's, then each check's),
    when and at which step they were measured (``time.monotonic``), when the run must end, and
    the fractions of the run still to re-time at."""

    costs: StepCosts
    made_at: float
    made_at_step: int
    deadline: float
    checks: list[float]

    def due(self, step: int, max_steps: int) -> bool:
        """Whether ``step`` is the next check's step (the first at least one step in)."""
        return bool(self.checks) and step >= max(1, round(self.checks[0] * max_steps))


def retime(
    plan: Plan, step: int, now: float, val_every: int, ckpt_every: int
) -> tuple[int, StepCosts]:
    """The run's step count re-sized at ``step``, and the costs it assumes: the plan's costs
    scaled by how much longer (or shorter) the steps since it was made took than it predicted,
    then the most steps that fit in the time left (at least one more). Only the steps since
    the last measurement count, so a machine that slowed down is seen at its new speed."""
    done = step - plan.made_at_step
    predicted = run_seconds(done, plan.costs, val_every, ckpt_every, plan.made_at_step)
    # no end-of-run validation or save happened at ``step``
    predicted -= plan.costs.validation * ((step % val_every) > 0) + plan.costs.save
    scale = (now - plan.made_at) / predicted if predicted > 0 else 1.0
    costs = StepCosts(
        plan.costs.step * scale, plan.costs.validation * scale, plan.costs.save * scale
    )
    return step + plan_steps(plan.deadline - now, costs, val_every, ckpt_every, 1, step), costs


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
    deadline = t.started_at + 60 * float(tcfg.budget_minutes) * (1 - float(tcfg.budget_margin))
    now = time.monotonic()
    total = t.step + plan_steps(deadline - now, costs, tcfg.val_every, tcfg.ckpt_every)
    total = distributed.rank0_value(total, t.dist, t.device)
    t.set_max_steps(total)
    checks = sorted(float(f) for f in tcfg.get("budget_checks") or [])
    if any(not 0 < f < 1 for f in checks):
        raise ValueError(f"trainer.budget_checks must lie in (0, 1), got {checks}")
    t.budget_plan = Plan(costs, now, t.step, deadline, checks)
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


def replan(trainer: Trainer) -> bool:
    """At a check of ``trainer.budget_checks``: re-size the run from the time its steps took.
    True when the step count changed (the caller restarts a loader whose sources join at a
    fraction of the run)."""
    t, tcfg, plan = trainer, trainer.tcfg, trainer.budget_plan
    now = time.monotonic()
    total, costs = retime(plan, t.step, now, tcfg.val_every, tcfg.ckpt_every)
    total = distributed.rank0_value(total, t.dist, t.device)
    plan.costs, plan.made_at, plan.made_at_step = costs, now, t.step
    old = tcfg.max_steps
    changed = abs(total - old) > REPLAN_TOLERANCE * old
    if changed:
        t.set_max_steps(total)
    while plan.checks and plan.due(t.step, t.tcfg.max_steps):  # this one, and any a shorter
        plan.checks.pop(0)  # run has passed already
    if changed:
        log.info(
            "trainer.budget_checks at step %d: the run went %s than planned; max_steps %d -> "
            "%d to end within trainer.budget_minutes=%s (%.0f s left)",
            t.step,
            "slower" if total < old else "faster",
            old,
            total,
            tcfg.budget_minutes,
            plan.deadline - now,
        )
    else:
        log.info(
            "trainer.budget_checks at step %d: %d steps still fit in trainer.budget_minutes=%s "
            "(re-timed: %d)",
            t.step,
            old,
            tcfg.budget_minutes,
            total,
        )
    return changed
