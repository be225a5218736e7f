"""Every experiment composes and builds; configs hold components as _target_ entries."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from ace_str.engine import builders
from tests.conftest import TINY, compose_config

EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).parents[1] / "configs/experiment").glob("*.yaml")
)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment):
    cfg = compose_config("train", [f"experiment={experiment}"])
    assert cfg.name == experiment
    charset = builders.build_charset(cfg)
    model = builders.build_model(cfg, charset)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    instantiate(cfg.scheduler)(optimizer)
    assert model.num_classes == charset.num_classes


def test_crnn_ace_is_the_papers_setting():
    cfg = compose_config("train", ["experiment=crnn_ace"])
    assert cfg.head.mode == "cross_entropy"
    assert (cfg.data.height, cfg.data.width, cfg.data.channels) == (32, 100, 1)
    assert cfg.charset.preset == "lower36"
    assert cfg.optimizer._target_ == "torch.optim.Adadelta" and cfg.optimizer.lr == 1.0
    assert cfg.data.batch_size == 64 and cfg.data.train_roots == []


def test_missing_train_root_is_named(tmp_path):
    cfg = compose_config(
        "train", ["experiment=crnn_ace", *TINY, f"data.train_roots=[{tmp_path}/nope]"]
    )
    with pytest.raises(FileNotFoundError, match="nope"):
        builders.build_train_dataset(cfg, builders.build_charset(cfg))
