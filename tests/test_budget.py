"""trainer.budget_minutes: the probe sizes the run to the machine, and the plan is kept."""

import types

import pytest
import torch
from hydra.utils import instantiate

from ace_str.build.checkpoint import load_checkpoint
from ace_str.engine.budget import (
    Plan,
    StepCosts,
    measure_costs,
    plan_steps,
    retime,
    run_seconds,
)
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


def test_a_plan_can_be_costed_from_any_step() -> None:
    costs = StepCosts(step=1.0, validation=10.0, save=0.5)
    # steps 4..13: validations at 5, 10 and the end (13); a save at the end only
    assert run_seconds(10, costs, val_every=5, ckpt_every=20, start=3) == 10 + 30 + 0.5
    assert plan_steps(40.5, costs, 5, 20, start=3) == 10
    assert plan_steps(40.4, costs, 5, 20, start=3) == 9  # 9 steps end at 12: 9 + 30 + 0.5
    assert run_seconds(7, costs, 5, 20, start=3) == run_seconds(10, costs, 5, 20) - (
        run_seconds(3, costs, 5, 20) - 10 - 0.5  # the first 3 steps less their end costs
    )


def test_retime_scales_the_costs_by_what_the_steps_took() -> None:
    def steps(plan: Plan, step: int, now: float, val_every: int = 1000) -> int:
        return retime(plan, step, now, val_every, 1000)[0]

    plan = Plan(StepCosts(1.0, 0.0, 0.0), made_at=0.0, made_at_step=0, deadline=100.0, checks=[])
    # 20 steps took 30 s, not 20: at 1.5 s a step the 70 s left hold 46 more
    assert steps(plan, 20, 30.0) == 66
    assert retime(plan, 20, 30.0, 1000, 1000)[1] == StepCosts(1.5, 0.0, 0.0)
    assert steps(plan, 20, 20.0) == 100  # on time: the plan stands
    assert steps(plan, 20, 10.0) == 20 + 180  # twice as fast
    assert steps(plan, 20, 99.9) == 21  # out of time: one last step
    # only the steps since the last measurement count: steps 20-30 took 20 s at 1.5 s planned
    later = Plan(StepCosts(1.5, 0.0, 0.0), made_at=30.0, made_at_step=20, deadline=100.0, checks=[])
    assert steps(later, 30, 50.0) == 30 + 25  # 2 s a step now: 50 s left
    # validations count on both sides: 20 steps and 2 validations (at 10, 20) of 5 s predicted
    # 30 s; they took 60 s, so a step costs 2 s and a validation 10 s from here on
    plan = Plan(StepCosts(1.0, 5.0, 0.0), made_at=0.0, made_at_step=0, deadline=200.0, checks=[])
    assert steps(plan, 20, 60.0, val_every=10) == 65
    # 45 more: 90 s + validations at 30, 40, 50, 60 and the end (65), 50 s: the 140 s left
    assert run_seconds(45, StepCosts(2.0, 10.0, 0.0), 10, 1000, start=20) == 140.0


def slowing(trainer: Trainer, clock: FakeClock, fast: float, slow: float) -> Trainer:
    """The budget probe's 35 steps take ``fast`` seconds each, every later step ``slow``: a
    machine that slowed down once the plan was made."""
    original, calls = trainer.train_step, []

    def step(batch):
        calls.append(1)
        clock.now += fast if len(calls) <= 35 else slow
        return original(batch)

    trainer.train_step = step
    return trainer


def test_budget_checks_resize_a_run_that_went_slower(tiny_config, clock, tmp_path) -> None:
    """Planned at 0.25 s a step (81 steps in the 29.1 s left), run at 0.4 s: the check at 20%
    (step 16) re-sizes the run to the 34 steps that fit after it, so it still ends in its budget,
    with the schedule annealed; without checks the same run would end 12 s late."""
    trainer = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5"), tmp_path / "a")
    rates = []
    original = trainer.train_step

    def record(batch):
        out = original(batch)
        rates.append((trainer.step + 1, trainer.optimizer.param_groups[0]["lr"]))
        return out

    trainer.train_step = record
    slowing(trainer, clock, 0.25, 0.4).fit()
    assert trainer.step == trainer.tcfg.max_steps == trainer.scheduler.total_steps == 50
    assert (
        clock.now <= 0.97 * 30 and load_checkpoint(tmp_path / "a" / "last.ckpt")["max_steps"] == 50
    )
    # from step 17 on the rate is the 50-step schedule's, as if it had been planned from the start
    reference = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = instantiate(trainer.cfg.scheduler)(reference)
    expected = {}
    for step in range(1, 51):
        reference.step()
        schedule.step()
        expected[step] = reference.param_groups[0]["lr"]
    assert all(lr == pytest.approx(expected[step]) for step, lr in rates[-34:])
    assert rates[-34][0] == 17 and rates[15][1] != pytest.approx(expected[16])  # step 16: 81's

    clock.now = 0.0
    unchecked = Trainer(
        tiny_config(*BUDGET, "trainer.budget_minutes=0.5", "trainer.budget_checks=[]"),
        tmp_path / "b",
    )
    slowing(unchecked, clock, 0.25, 0.4).fit()
    assert unchecked.step == 81 and clock.now > 40


def test_a_run_resumed_after_a_check_equals_the_uninterrupted_one(
    tiny_config, clock, tmp_path
) -> None:
    whole = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5"), tmp_path / "whole")
    slowing(whole, clock, 0.25, 0.4).fit()
    clock.now = 0.0  # before the next Trainer: its budget counts from its construction
    first = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5"), tmp_path / "first")
    interrupt_at(slowing(first, clock, 0.25, 0.4), 20)
    first.fit()
    assert first.step == 20 and load_checkpoint(tmp_path / "first" / "last.ckpt")["max_steps"] == 50
    ckpt = f"ckpt_path={tmp_path / 'first' / 'last.ckpt'}"
    resumed = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5", ckpt), tmp_path / "r")
    timed(resumed, clock, 0.4).fit()
    assert resumed.step == whole.step == 50 and resumed.budget_plan is None  # no new probe
    a, b = weights(whole), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_source_joining_at_a_fraction_follows_a_resized_run(tiny_config, clock, tmp_path):
    """The loader is rebuilt at the check: the late source joins at half of the 50 steps the
    run now has (step 25: 25 batches x 2 samples), not at half of the 81 first planned."""
    sources = "data.train_sources=[{name:synth,ratio:1.0},{name:late,ratio:1.0,start_fraction:0.5}]"
    trainer = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5", sources), tmp_path)
    slowing(trainer, clock, 0.25, 0.4).fit()
    assert trainer.step == 50
    assert trainer.source_counts["late"] == 25 * 2 and trainer.source_counts["synth"] == 75 * 2


def test_checks_a_shortened_run_has_passed_are_dropped(tiny_config, clock, tmp_path, caplog):
    """At 0.8 s a step the check at step 16 cuts the run to 25 steps, where 40% and 60% (steps
    10 and 15) lie behind: they are not run at once on the next steps."""
    trainer = Trainer(tiny_config(*BUDGET, "trainer.budget_minutes=0.5"), tmp_path)
    with caplog.at_level("INFO", logger="ace_str.engine.budget"):
        slowing(trainer, clock, 0.25, 0.8).fit()
    checks = [m for r in caplog.records if "budget_checks at step" in (m := r.getMessage())]
    assert trainer.step == 25 and len(checks) == 1 and "81 -> 25" in checks[0]
    assert clock.now <= 0.97 * 30 and trainer.budget_plan.checks == []
