"""The pretrain stage (2D ACE's warm start): its config is the run's with the stage's overrides,
the run starts from the stage's last weights, and train.py runs both stages in one command."""

from __future__ import annotations

import pytest
import torch

from ace_str.build.checkpoint import load_checkpoint
from ace_str.build.config import compose_config
from ace_str.engine.pretrain import STAGE_DIR, after_pretrain, pretrain_config
from ace_str.engine.trainer import Trainer
from tests.test_cli_errors import run
from tests.test_resnet2d import TINY_2D

# the quick recipe's stage made tiny: 32 px crops (a 4x13 map), one step
TINY_STAGE = 'pretrain.overrides=["data.height=32","data.keep_ratio=false","trainer.max_steps=1"]'


def config(*overrides: str):
    return compose_config("train", ["experiment=resnet2d_ace_quick", *TINY_2D, *overrides])


def test_stage_config_is_the_run_with_the_stage_overrides():
    cfg = config()
    stage = pretrain_config(cfg)
    assert stage.data.height == 32 and stage.data.transform.height == 32  # interpolations follow
    assert stage.data.synth.render.curve_prob == 0 and stage.head.blank_prior == 0.875
    assert stage.trainer.budget_minutes == 10 and stage.pretrain is None
    assert cfg.data.height == 96 and cfg.trainer.budget_minutes is None  # the run's own untouched
    assert stage.name == "resnet2d_ace_quick_pretrain"
    assert pretrain_config(config("pretrain=null")) is None
    assert pretrain_config(config("ckpt_path=/some/last.ckpt")) is None  # resuming: past the stage
    with pytest.raises(ValueError, match="init_weights"):
        pretrain_config(config("init_weights=/some/best.ckpt"))
    with pytest.raises(ValueError, match="key=value"):
        pretrain_config(config("pretrain.overrides=[nonsense]"))


def test_run_starts_from_the_stage_last_weights(tmp_path):
    cfg = config(TINY_STAGE)
    stage = Trainer(pretrain_config(cfg), tmp_path / STAGE_DIR)
    stage.fit()
    assert stage.step == 1 and not stage.interrupted
    warm = Trainer(after_pretrain(cfg, tmp_path / STAGE_DIR), tmp_path)
    warm.resume()
    trained = load_checkpoint(tmp_path / STAGE_DIR / "last.ckpt")["model"]
    fresh = Trainer(cfg, tmp_path / "fresh").model.state_dict()
    moved = 0
    for name, value in warm.model.state_dict().items():
        assert torch.equal(value, trained[name]), name
        moved += not torch.equal(value, fresh[name])
    assert moved > 0  # the stage's weights, not a fresh model's
    assert warm.step == 0
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        after_pretrain(cfg, tmp_path / "nowhere")


def test_train_py_runs_the_stage_then_the_run(tmp_path):
    result = run("train.py", tmp_path, "experiment=resnet2d_ace_quick", *TINY_2D, TINY_STAGE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / STAGE_DIR / "last.ckpt").is_file()
    assert (tmp_path / "run" / "last.ckpt").is_file()
    log = result.stdout + result.stderr
    assert "pretrain stage done" in log and "initialised" in log
    assert log.count("finished 2 steps") == 1 and log.count("finished 1 steps") == 1
