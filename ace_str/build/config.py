"""Configs as the entry points compose them, for code that runs outside ``@hydra.main``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def compose_config(
    name: str = "train", overrides: Sequence[str] = (), config_dir: str | Path = CONFIGS
) -> DictConfig:
    """The config ``python train.py`` (``name="train"``) or ``evaluate.py`` (``"evaluate"``) would
    run with these overrides."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def as_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """A checkpoint stores its config as a plain dict; code downstream reads a DictConfig."""
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
