"""trainer.ema / trainer.swa: the average follows its formula, is what validation and the
checkpoint's ``model`` hold, and a resumed run restores it exactly."""

import pytest
import torch
from torch import nn

from ace_str.build.checkpoint import load_checkpoint
from ace_str.build.models import load_model
from ace_str.engine import budget
from ace_str.engine.averaging import WeightAverage
from ace_str.engine.trainer import Trainer

from .test_trainer import interrupt_at


def _set(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
        model[1].running_mean.fill_(value)
        model[1].num_batches_tracked.fill_(int(10 * value))


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def test_ema_follows_the_formula_on_a_hand_made_sequence() -> None:
    """e_1 = w_1, e_n = d e_(n-1) + (1 - d) w_n, for parameters and BatchNorm statistics alike;
    integer counters are copied. Catches a decay applied the wrong way round, an average that
    starts from the initial weights, or buffers left out."""
    model, decay, sequence = _model(), 0.9, [1.0, 3.0, -2.0, 0.5]
    average = WeightAverage(model, ema=decay)
    expected = None
    for step, value in enumerate(sequence, start=1):
        _set(model, value)
        average.update(model, step, max_steps=10)
        expected = value if expected is None else decay * expected + (1 - decay) * value
    for p in average.module.parameters():
        torch.testing.assert_close(p, torch.full_like(p, expected), rtol=0, atol=1e-6)
    bn = average.module[1]
    torch.testing.assert_close(bn.running_mean, torch.full((2,), expected), rtol=0, atol=1e-6)
    assert int(bn.num_batches_tracked) == 5 and average.count == len(sequence)


def test_swa_is_the_uniform_mean_from_its_start_fraction() -> None:
    """swa=0.5 of 4 steps averages steps 3 and 4 only."""
    model = _model()
    average = WeightAverage(model, swa=0.5)
    for step, value in enumerate([10.0, 20.0, 1.0, 2.0], start=1):
        _set(model, value)
        average.update(model, step, max_steps=4)
    assert average.count == 2 and average.start_step(4) == 2
    for p in average.module.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 1.5))


@pytest.mark.parametrize(
    ("ema", "swa"), [(0.9, 0.5), (1.0, None), (None, 1.0), (None, None), (-0.1, None)]
)
def test_bad_settings_are_one_clear_error(ema, swa) -> None:
    with pytest.raises(ValueError, match="trainer"):
        WeightAverage(_model(), ema, swa)


@pytest.mark.parametrize("setting", ["trainer.ema=0.8", "trainer.swa=0.5"])
def test_checkpoint_holds_the_average_and_the_raw_weights(tiny_config, tmp_path, setting):
    """``model`` (what evaluate.py loads) is the average, ``raw_model`` the training weights."""
    trainer = Trainer(tiny_config("trainer.max_steps=4", setting), tmp_path)
    trainer.fit()
    state = load_checkpoint(tmp_path / "last.ckpt")
    assert state["averaged_count"] == (4 if "ema" in setting else 2)
    averaged, raw = trainer.average.module.state_dict(), trainer.model.state_dict()
    assert all(torch.equal(state["model"][k], averaged[k]) for k in averaged)
    assert all(torch.equal(state["raw_model"][k], raw[k]) for k in raw)
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw)
    assert load_checkpoint(tmp_path / "best.ckpt")["averaged_count"] > 0


def test_evaluation_reads_the_raw_weights_on_request(tiny_config, tmp_path):
    """weights=raw: the run without averaging, read from the same checkpoint; a checkpoint
    trained without averaging has none, and says so."""
    Trainer(tiny_config("trainer.max_steps=3", "trainer.ema=0.8"), tmp_path / "ema").fit()
    state = load_checkpoint(tmp_path / "ema" / "last.ckpt")
    for weights, key in (("averaged", "model"), ("raw", "raw_model")):
        model, _, _ = load_model(tmp_path / "ema" / "last.ckpt", torch.device("cpu"), None, weights)
        loaded = model.state_dict()
        assert all(torch.equal(loaded[k], state[key][k]) for k in loaded)
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "plain").fit()
    with pytest.raises(ValueError, match="no raw weights"):
        load_model(tmp_path / "plain" / "last.ckpt", torch.device("cpu"), None, "raw")
    with pytest.raises(ValueError, match="averaged or raw"):
        load_model(tmp_path / "ema" / "last.ckpt", torch.device("cpu"), None, "ema")


@pytest.mark.parametrize("setting", ["trainer.ema=0.8", "trainer.swa=0.3"])
def test_resume_restores_the_average_exactly(tiny_config, tmp_path, setting):
    """A SIGTERM-saved run resumed to the end holds the average and the training weights of an
    uninterrupted run, bit for bit. Catches a resume that restarts the average (its count),
    or trains on the averaged weights instead of the raw ones."""
    overrides = ["trainer.max_steps=6", "optimizer=adamw", "scheduler=onecycle", setting]
    straight = Trainer(tiny_config(*overrides), tmp_path / "straight")
    straight.fit()
    first = Trainer(tiny_config(*overrides), tmp_path / "first")
    interrupt_at(first, 3)
    first.fit()
    ckpt = tmp_path / "first" / "last.ckpt"
    assert load_checkpoint(ckpt)["step"] == 3
    resumed = Trainer(tiny_config(*overrides, f"ckpt_path={ckpt}"), tmp_path / "second")
    resumed.fit()
    a = load_checkpoint(tmp_path / "straight" / "last.ckpt")
    b = load_checkpoint(tmp_path / "second" / "last.ckpt")
    assert a["averaged_count"] == b["averaged_count"] > 0
    for key in ("model", "raw_model"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_budget_probe_undoes_the_average(tiny_config, tmp_path):
    """The probe's steps (whole accumulated steps, the average updated to time it) leave the
    weights and the average as they were; the planned run then starts from them."""
    cfg = tiny_config(
        "trainer.ema=0.9",
        "trainer.accumulate=2",
        "trainer.budget_minutes=0.5",
        "trainer.budget_warmup_steps=1",
        "trainer.budget_probe_steps=2",
    )
    trainer = Trainer(cfg, tmp_path)
    before = {k: v.clone() for k, v in trainer.average.state_dict().items()}
    raw = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    calls = []
    step = trainer.train_step
    trainer.train_step = lambda batches: calls.append(len(batches)) or step(batches)
    budget.plan(trainer)
    assert calls == [2, 2, 2] and trainer.average.count == 0
    after = trainer.average.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(raw[k], v) for k, v in trainer.model.state_dict().items())
