"""The synthetic renderer of a data config (``data=synth_real`` ...) outside a training run, for
scripts that show or time it; built exactly as the trainer builds ``data.synth``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def compose_train_config(overrides: Sequence[str] = (), config_dir: Path = CONFIGS) -> DictConfig:
    """The config ``python train.py OVERRIDES`` would run with."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def synth_from_config(
    cfg: DictConfig,
    length: int,
    seed: int | None = None,
    transform: Callable[[Any], Any] | None = None,
):
    """``cfg.data.synth`` with ``cfg.charset``, ``length`` samples and optionally another seed."""
    extra: dict[str, Any] = {"length": length, "transform": transform}
    if seed is not None:
        extra["seed"] = seed
    return instantiate(cfg.data.synth, charset=instantiate(cfg.charset), **extra)
