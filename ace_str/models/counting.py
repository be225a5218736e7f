"""Object counts read off an ACE probability map (paper Sec. 4.3)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ace_str.data.charset import Charset
from ace_str.data.counting import label_counts


def counts_from_map(logits: Tensor) -> Tensor:
    """(B, ..., C) logits -> (B, C) long counts.

    ACE makes each class's probability summed over the map its predicted count (Eq. 4's y_k), so
    the count is that sum, thresholded at zero and rounded to the nearest integer. Column 0 is the
    blank's count (the empty positions); callers scoring objects drop it.
    """
    if logits.dim() < 2:
        raise ValueError(f"expected logits (B, ..., C), got {tuple(logits.shape)}")
    probs = logits.float().softmax(dim=-1).flatten(1, -2)  # (B, positions, C)
    return probs.sum(dim=1).clamp_min(0).round().long()


def most_frequent_counts(train_counts: Tensor) -> Tensor:
    """(N, K) training counts -> (K,) each class's most frequent count (the smaller on ties):
    Table 4's "always predict the mode" baseline."""
    if train_counts.dim() != 2 or train_counts.shape[0] == 0:
        raise ValueError(f"expected non-empty (N, K) counts, got {tuple(train_counts.shape)}")
    counts = train_counts.long().clamp_min(0)
    histograms = [column.bincount() for column in counts.T]  # argmax keeps the first maximum
    return torch.stack([h.argmax() for h in histograms])


@torch.inference_mode()
def predict_counts(
    model: nn.Module, loader: Iterable, charset: Charset, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """(predicted, true) (N, K) object counts over a loader of `Batch`es; the blank dropped."""
    model.eval()
    predicted, truth = [], []
    for batch in loader:
        logits = model(batch.images.to(device))
        predicted.append(counts_from_map(logits)[:, 1:].cpu())
        truth.append(label_counts(batch.texts, charset))
    return torch.cat(predicted), torch.cat(truth)
