"""Models, from a config (to train) or from a checkpoint alone (to evaluate, read, export), and
the device and thread settings they run with."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ace_str.build.checkpoint import load_checkpoint
from ace_str.build.config import as_config
from ace_str.data.charset import Charset
from ace_str.models.recognizer import Recognizer

log = logging.getLogger(__name__)


def build_charset(cfg: DictConfig) -> Charset:
    """The symbols a model reads; built beside the model because they size its head."""
    return instantiate(cfg.charset)


def build_model(cfg: DictConfig, charset: Charset) -> Recognizer:
    return instantiate(cfg.model, head=instantiate(cfg.head), num_classes=charset.num_classes)


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_threads(setting: int | str | None, workers: int) -> None:
    """``auto``: one torch thread per core the decoding workers leave free.

    On the 2-core box, 2 torch threads plus a decoding worker oversubscribe the cores and the
    full evaluation ran at 0.40-0.64 of the model alone; 1 thread + 1 worker reached 0.87.
    """
    if setting == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, (cores or 1) - workers))
    elif setting:
        torch.set_num_threads(int(setting))


def load_model(
    checkpoint: str | Path,
    device: torch.device,
    decoder: str | None = None,
    weights: str = "averaged",
) -> tuple[Recognizer, Charset, DictConfig]:
    """Model (in eval mode), charset and the training config, from the checkpoint alone (never
    its name); ``decoder`` switches the head's decoding (None: as trained). ``weights="raw"``
    reads the training weights a run with ``trainer.ema``/``swa`` keeps beside its average
    (the run without averaging, at no extra training cost); "averaged" reads ``model``."""
    state = load_checkpoint(checkpoint, device)
    if weights not in ("averaged", "raw"):
        raise ValueError(f"weights must be averaged or raw, got {weights!r}")
    key = "raw_model" if weights == "raw" else "model"
    if key not in state:
        raise ValueError(
            f"{checkpoint} holds no raw weights: it was trained without trainer.ema or "
            "trainer.swa, so its model is the raw one (weights=averaged)"
        )
    cfg = as_config(state["config"])
    charset = build_charset(cfg)
    if list(charset.symbols) != list(state["charset"]):
        raise RuntimeError(f"{checkpoint}: the stored charset and config disagree")
    model = build_model(cfg, charset).to(device)
    model.load_state_dict(state[key])
    if decoder:
        model.head.use_decoder(decoder)
    model.eval()
    return model, charset, cfg


def attach_language_model(model: Recognizer, charset: Charset, lm_cfg: DictConfig | None) -> None:
    """``lm.weight`` > 0: the head decodes with the renderer's character n-gram from now on."""
    if lm_cfg is None or not lm_cfg.weight:
        return
    if lm_cfg.weight < 0:
        raise ValueError(f"lm.weight must be at least 0, got {lm_cfg.weight}")
    from ace_str.models.language_model import english_language_model  # wordfreq: only here

    lm = english_language_model(charset, lm_cfg.order, lm_cfg.vocab_size)
    model.head.use_language_model(lm, lm_cfg.weight, lm_cfg.length_bonus)
    log.info(
        "decoding with a %d-gram of %d words and numbers, weight %g, length bonus %g",
        lm.order,
        lm.num_sequences,
        lm_cfg.weight,
        lm_cfg.length_bonus,
    )
