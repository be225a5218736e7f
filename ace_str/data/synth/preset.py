"""The synthetic renderer of a data config (``data=synth_real`` ...) outside a training run, for
scripts that show or time it; built exactly as the trainer builds ``data.synth``."""

from __future__ import annotations

import time
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


def render_rate(dataset, num: int, warmup: int = 0, start: int = 0) -> float:
    """Samples per CPU second of ``dataset[start + warmup ...]`` in this process: the renderer's
    speed per core, read from ``time.process_time`` so that other processes on the machine do
    not distort it (set one torch thread first, as a DataLoader worker has). The warm-up samples
    open fonts at the sizes in use and are not timed."""
    for index in range(start, start + warmup):
        dataset[index]
    begin = time.process_time()
    for index in range(start + warmup, start + warmup + num):
        dataset[index]
    return num / max(time.process_time() - begin, 1e-9)
