"""Reading a dataset with a model and scoring it; shared by validation and evaluate.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ace_str.data.charset import Charset
from ace_str.data.collate import Batch
from ace_str.scoring.metrics import MetricTotals, normalize_text


@dataclass
class Reading:
    truth: str
    prediction: str
    confidence: float
    key: str = ""  # image path or index, when the batch carries ``keys``


@dataclass
class EvalResult:
    totals: MetricTotals = field(default_factory=MetricTotals)
    readings: list[Reading] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)


# Sees each batch with its logits and free readings (e.g. lexicon-constrained decoding).
BatchHook = Callable[[Batch, torch.Tensor, list[str], list[float]], None]


def decode_logits(model: nn.Module, logits: torch.Tensor, charset: Charset):
    """Texts and confidences from a model's logits."""
    sequences, confidence = model.head.decode(logits)
    return [charset.decode(s) for s in sequences], confidence.tolist()


@torch.inference_mode()
def read_batch(model: nn.Module, images: torch.Tensor, charset: Charset):
    """Texts and confidences for a batch of preprocessed images."""
    return decode_logits(model, model(images), charset)


@torch.inference_mode()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[Batch | None],
    charset: Charset,
    device: torch.device,
    protocol: str = "standard",
    keep_readings: bool = True,
    keep_images: int = 0,
    on_batch: BatchHook | None = None,
) -> EvalResult:
    """Scores under ``protocol`` (both sides normalised alike); keeps readings for reports.

    ``on_batch`` gets every batch with its logits, so extra decodings need no second pass.
    """
    was_training = model.training
    model.eval()
    result = EvalResult()
    try:
        for batch in batches:
            if batch is None:
                continue
            logits = model(batch.images.to(device, non_blocking=True))
            texts, confidences = decode_logits(model, logits, charset)
            if on_batch is not None:
                on_batch(batch, logits, texts, confidences)
            preds = [normalize_text(t, protocol) for t in texts]
            truths = [normalize_text(t, protocol) for t in batch.texts]
            result.totals.update(preds, truths, confidences)
            if keep_readings:
                keys = getattr(batch, "keys", None) or [""] * len(batch)
                result.readings.extend(
                    Reading(g, p, c, k)
                    for g, p, c, k in zip(batch.texts, texts, confidences, keys, strict=True)
                )
            if len(result.images) < keep_images:
                result.images.extend(batch.images[: keep_images - len(result.images)].cpu())
    finally:
        model.train(was_training)
    return result
