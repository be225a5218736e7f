"""A run's input transform, and the character counter of Sec. 4.1.2 that a 2D canvas uses to
normalise text by its character count.

The counter is an ordinary Recognizer whose head is a `CountHead` (trained by
``experiment=char_counter_quick``), applied to one PIL image through the input transform it was
trained with. `CheckpointCounter` is what ``data.transform.counter_checkpoint`` becomes: a
callable that pickles as its path, so each DataLoader worker loads its own copy on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from PIL import Image

from ace_str.build.models import load_model
from ace_str.data.normalize2d import CanvasNormalize
from ace_str.models.heads.count import CountHead

log = logging.getLogger(__name__)


def build_transform(cfg: DictConfig) -> Callable[[Any], Any]:
    """``data.transform``; a 2D canvas given ``counter_checkpoint`` gets that counter as its
    ``counter`` callable (the data layer never loads a model itself)."""
    node = OmegaConf.to_container(cfg.data.transform, resolve=True)
    checkpoint = node.pop("counter_checkpoint", None)
    if checkpoint is not None:
        node["counter"] = CheckpointCounter(checkpoint)
    return instantiate(node)


def inference_transform(
    train_cfg: DictConfig,
    max_text_height: int | None = None,
    margin: float | None = None,
    min_aspect: float | None = None,
) -> Callable:
    """The transform evaluate.py and read.py put real crops through: the run's own, except a 2D
    canvas's text-height cap, side margin and narrowest aspect, each the value given, else the
    run's ``data.inference_max_text_height`` / ``data.inference_margin`` /
    ``data.inference_min_aspect`` (chosen on real training crops: REPRODUCING.md, Table 2), else
    as trained. What suits tight real crops need not be what the synthetic words trained under."""
    given = {"max_text_height": max_text_height, "margin": margin, "min_aspect": min_aspect}
    for key, value in given.items():
        if value is None:
            given[key] = train_cfg.data.get(f"inference_{key}")
    chosen = {key: value for key, value in given.items() if value is not None}
    if not chosen:
        return build_transform(train_cfg)
    if not isinstance(plain := build_transform(train_cfg), CanvasNormalize):
        key, value = next(iter(chosen.items()))
        raise ValueError(
            f"{key}={value}: the checkpoint's input transform ({type(plain).__name__}) is not a "
            "2D canvas"
        )
    cfg = train_cfg.copy()
    with open_dict(cfg):
        for key, value in chosen.items():
            cfg.data.transform[key] = value
    return build_transform(cfg)


class CharCounter:
    """``counter(image) -> int``: the predicted number of characters of a text image."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu") -> None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"counter checkpoint not found: {path}")
        model, _, cfg = load_model(path, torch.device(device))
        if not isinstance(model.head, CountHead):
            raise ValueError(f"{path}: not a counter (its head is {type(model.head).__name__})")
        self.model = model
        self.device = torch.device(device)
        # The counter reads the plain fitted canvas it was trained on.
        if cfg.data.transform.get("counter_checkpoint") is not None:
            raise ValueError(f"{path}: a counter's own input transform cannot use a counter")
        self.transform = build_transform(cfg)
        log.info("character counter loaded from %s", path)

    @torch.inference_mode()
    def __call__(self, image: Image.Image) -> int:
        logits = self.model(self.transform(image)[None].to(self.device))
        counts, _ = self.model.head.counts(logits)
        return int(counts[0])


class CheckpointCounter:
    """A `CharCounter` loaded on first call in each process; pickles as its path alone."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu") -> None:
        self.checkpoint = str(checkpoint)
        self.device = str(device)
        self._counter: CharCounter | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"CheckpointCounter({self.checkpoint!r})"

    def __getstate__(self) -> dict:
        return {"checkpoint": self.checkpoint, "device": self.device}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["checkpoint"], state["device"])

    def __call__(self, image: Image.Image) -> int:
        if self._counter is None or self._pid != os.getpid():
            self._counter = CharCounter(self.checkpoint, self.device)
            self._pid = os.getpid()
        return self._counter(image)
