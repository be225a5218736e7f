"""Reading a dataset with a model and scoring it; shared by validation and evaluate.py."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ace_str.data.charset import Charset
from ace_str.data.collate import Batch
from ace_str.evaluation.metrics import MetricTotals, normalize_text


@dataclass
class Reading:
    truth: str
    prediction: str
    confidence: float


@dataclass
class EvalResult:
    totals: MetricTotals = field(default_factory=MetricTotals)
    readings: list[Reading] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)


@torch.inference_mode()
def read_batch(model: nn.Module, images: torch.Tensor, charset: Charset):
    """Texts and confidences for a batch of preprocessed images."""
    logits = model(images)
    sequences, confidence = model.head.decode(logits)
    return [charset.decode(s) for s in sequences], confidence.tolist()


@torch.inference_mode()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[Batch | None],
    charset: Charset,
    device: torch.device,
    protocol: str = "standard",
    keep_readings: bool = True,
    keep_images: int = 0,
) -> EvalResult:
    """Scores under ``protocol`` (both sides normalised alike); keeps readings for reports."""
    was_training = model.training
    model.eval()
    result = EvalResult()
    try:
        for batch in batches:
            if batch is None:
                continue
            texts, confidences = read_batch(model, batch.images.to(device), charset)
            preds = [normalize_text(t, protocol) for t in texts]
            truths = [normalize_text(t, protocol) for t in batch.texts]
            result.totals.update(preds, truths, confidences)
            if keep_readings:
                result.readings.extend(
                    Reading(g, p, c)
                    for g, p, c in zip(batch.texts, texts, confidences, strict=True)
                )
            if len(result.images) < keep_images:
                result.images.extend(batch.images[: keep_images - len(result.images)].cpu())
    finally:
        model.train(was_training)
    return result
