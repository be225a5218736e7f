"""scripts/compare_decoders.py: every decoder of a checkpoint's head on its own validation set."""

from __future__ import annotations

import pytest

from ace_str.engine.trainer import Trainer
from tests.conftest import load_script


def test_rows_per_decoder_on_the_runs_own_validation_set(tiny_config, tmp_path, capsys):
    """The row of the decoder the run validated with (configs/head/ace.yaml: mass) must equal
    what its own validation printed for the same weights: catches a script that renders
    another set (seed, size) or reads other weights."""
    overrides = ["trainer.max_steps=2", "trainer.val_every=2"]
    metrics = Trainer(tiny_config(*overrides), tmp_path).fit()
    script = load_script("compare_decoders")
    rows = {r["decoder"]: r for r in script.compare(str(tmp_path / "last.ckpt"), None, None)}
    assert list(rows) == ["greedy", "count", "peaks", "mass", "segment", "apportion"]
    assert rows["mass"]["samples"] == 8
    assert rows["mass"]["one_minus_ned"] == pytest.approx(metrics["synth_val/one_minus_ned"])
    assert rows["mass"]["word_accuracy"] == pytest.approx(metrics["synth_val/word_accuracy"])
    assert [r["samples"] for r in script.compare(str(tmp_path / "last.ckpt"), ["mass"], 4)] == [4]


def test_a_head_with_one_decoding_is_refused(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1", experiment="crnn_attn"), tmp_path).fit()
    with pytest.raises(SystemExit, match="has one decoding"):
        load_script("compare_decoders").compare(str(tmp_path / "last.ckpt"), None, 4)


def test_overrides_change_the_set_and_misspelt_keys_are_refused(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path).fit()
    script = load_script("compare_decoders")
    ckpt = str(tmp_path / "last.ckpt")
    rows = script.compare(ckpt, ["mass"], None, ["data.val_synth_size=3"])
    assert [r["samples"] for r in rows] == [3]
    with pytest.raises(Exception, match="val_synth_sise"):
        script.compare(ckpt, ["mass"], None, ["data.val_synth_sise=3"])
