"""Shared helpers: tiny Hydra configs that train in seconds on the CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from omegaconf import DictConfig

from ace_str.build.config import compose_config

REPO = Path(__file__).resolve().parents[1]

TINY = [
    "model.backbone.channels=[4,8,8,8,16,16,16]",
    "model.backbone.lstm_hidden=8",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.val_synth_size=8",
    "data.synth.vocab_size=500",
    "trainer.log_every=1",
    "trainer.val_every=1000",
    "trainer.ckpt_every=1000",
    "trainer.val_images=2",
    "trainer.num_threads=1",
    "trainer.budget_minutes=null",  # the quick recipes' budgets would override max_steps
]


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_config():
    def make(*overrides: str, experiment: str = "crnn_ace") -> DictConfig:
        return compose_config("train", [f"experiment={experiment}", *TINY, *overrides])

    return make
