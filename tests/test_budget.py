"""trainer.budget_minutes: the probe sizes the run to the machine, and the plan is kept."""

import types

import pytest
import torch

from ace_str.build.checkpoint import load_checkpoint
from ace_str.engine.budget import StepCosts, measure_costs, plan_steps, run_seconds
from ace_str.engine.trainer import Trainer
from tests.test_trainer import interrupt_at, weights

BUDGET = ["optimizer=adamw", "scheduler=onecycle", "trainer.val_every=40", "trainer.ckpt_every=25"]


def test_plan_is_the_most_steps_whose_cost_fits() -> None:
    costs = StepCosts(step=1.0, validation=10.0, save=0.5)
    # 30 steps: 30 s + 6 validations (every 5 and none extra at the end) + 2 saves (30 // 20, end)
    assert run_seconds(30, costs, val_every=5, ckpt_every=20) == 30 + 60 + 1.0
    assert run_seconds(31, costs, val_every=5, ckpt_every=20) == 31 + 70 + 1.0
    assert plan_steps(91.0, costs, val_every=5, ckpt_every=20) == 30
    assert plan_steps(90.9, costs, val_every=5, ckpt_every=20) == 29
    assert plan_steps(1000.0, StepCosts(0.1, 0.0, 0.0), 100, 100) == 10000
    assert plan_steps(0.0, costs, 5, 20) == 1  # never zero: one step still trains and saves
    with pytest.raises(ValueError, match="take time"):
        plan_steps(10.0, StepCosts(0.0, 1.0, 1.0), 5, 5)


class FakeClock:
    """Time that passes only when a training step says so: the plan becomes deterministic."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    patched = types.SimpleNamespace(perf_counter=fake, monotonic=fake)
    monkeypatch.setattr("ace_str.engine.budget.time", patched)
    monkeypatch.setattr("ace_str.engine.trainer.time", patched)
    return fake


def timed(trainer: Trainer, clock: FakeClock, seconds: float) -> Trainer:
    """Each training step of ``trainer`` takes ``seconds`` on ``clock``."""
    original = trainer.train_step

    def step(batch):
        clock.now += seconds
        return original(batch)

    trainer.train_step = step
    return trainer


def test_the_probe_times_steps_after_the_batches_the_workers_hold_ready() -> None:
    """Served from a full queue the probe would time the model alone, not the pipeline."""
    seen = []
    costs = measure_costs(iter(range(100)), seen.append, lambda: None, lambda: None, 2, 3, 4)
    assert seen == [0, 1, 6, 7, 8]  # 2 warm-up steps, 4 ready batches dropped, 3 timed steps
    assert costs.step > 0


def budget_run(tiny_config, clock, path, *overrides, step_seconds: float = 0.25) -> Trainer:
    """30 s budgets: the 35-step probe, then about 81 steps of 0.25 s."""
    trainer = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5", *overrides), path)
    timed(trainer, clock, step_seconds).fit()
    return trainer


def test_a_slower_step_makes_the_probe_choose_fewer_steps(tiny_config, clock, tmp_path) -> None:
    fast = budget_run(tiny_config, clock, tmp_path / "fast")
    clock.now = 0.0
    slow = budget_run(tiny_config, clock, tmp_path / "slow", step_seconds=0.4)
    # 30 s less the 3% margin: 29.1 s. The probe is 5 + 30 steps: at 0.4 s a step it took 14 s
    # and 15.1 s remain, 37 steps; at 0.25 s it took 8.75 s and 20.35 s remain, 81 steps
    assert (slow.step, fast.step) == (37, 81)
    # the run ends its planned schedule: one-cycle at its final rate, the plan in the checkpoint
    for trainer, path in ((fast, tmp_path / "fast"), (slow, tmp_path / "slow")):
        assert trainer.step == trainer.tcfg.max_steps == trainer.scheduler.total_steps
        assert load_checkpoint(path / "last.ckpt")["max_steps"] == trainer.step


def test_a_budget_run_equals_the_run_with_its_planned_steps(tiny_config, clock, tmp_path) -> None:
    """The probe's updates, random draws and data are undone: only the step count differs."""
    planned = budget_run(tiny_config, clock, tmp_path / "budget")
    fixed = Trainer(tiny_config(*BUDGET, f"trainer.max_steps={planned.step}"), tmp_path / "fixed")
    fixed.fit()
    a, b = weights(planned), weights(fixed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_run_keeps_the_planned_steps(tiny_config, clock, tmp_path) -> None:
    first = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5"), tmp_path / "first")
    timed(first, clock, 0.25)
    interrupt_at(first, 3)
    first.fit()
    planned = load_checkpoint(tmp_path / "first" / "last.ckpt")["max_steps"]
    assert first.step == 3 and planned == 81
    ckpt = f"ckpt_path={tmp_path / 'first' / 'last.ckpt'}"
    resumed = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5", ckpt), tmp_path / "b")
    calls = []
    timed(resumed, clock, 0.4)  # a probe now would choose far fewer steps
    original = resumed.train_step
    resumed.train_step = lambda batch: calls.append(1) or original(batch)
    resumed.fit()
    # no new probe (it would run extra steps and, at another speed, choose another count)
    assert resumed.step == planned and len(calls) == planned - 3
    assert resumed.scheduler.total_steps == planned
