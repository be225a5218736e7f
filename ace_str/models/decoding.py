"""Turning per-frame scores into class sequences: ACE counts, CTC alignments, 2D read order."""

from __future__ import annotations

import torch
from torch import Tensor

BLANK = 0
READ_ORDERS = ("column", "row")


def flatten_2d(logits: Tensor, order: str = "column") -> Tensor:
    """(B, H, W, C) -> (B, H*W, C) in reading order.

    ``column``: column by column, left to right, each column top to bottom, the order the paper's
    authors describe for decoding (Sec. 4.1.2); ``row``: row-major. (B, T, C) passes through.
    """
    if logits.dim() == 3:
        return logits
    if order not in READ_ORDERS:
        raise ValueError(f"read order must be one of {READ_ORDERS}, not {order!r}")
    if order == "column":
        logits = logits.transpose(1, 2)
    return logits.flatten(1, 2)


def _best_path(logits: Tensor) -> tuple[Tensor, Tensor]:
    probs = logits.float().softmax(dim=-1)
    best_prob, best = probs.max(dim=-1)
    return best, best_prob


def ace_greedy_decode(logits: Tensor, order: str = "column") -> tuple[list[list[int]], Tensor]:
    """Argmax per frame, blanks dropped, repeats kept: ACE counts characters, so two adjacent
    'l' frames read "ll". Confidence is the product of the kept frames' probabilities (the mean
    blank probability for an empty reading)."""
    best, best_prob = _best_path(flatten_2d(logits, order))
    keep = best != BLANK
    sequences = [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]
    log_conf = torch.where(keep, best_prob.clamp_min(1e-30).log(), torch.zeros_like(best_prob))
    confidence = log_conf.sum(dim=1).exp()
    empty = ~keep.any(dim=1)
    confidence = torch.where(empty, best_prob.mean(dim=1), confidence)
    return sequences, confidence


def ctc_greedy_decode(logits: Tensor) -> tuple[list[list[int]], Tensor]:
    """Best path, repeats collapsed, then blanks dropped; a blank between repeats keeps both."""
    best, best_prob = _best_path(logits)
    repeat = torch.zeros_like(best, dtype=torch.bool)
    repeat[:, 1:] = best[:, 1:] == best[:, :-1]
    keep = (best != BLANK) & ~repeat
    sequences = [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]
    log_conf = torch.where(keep, best_prob.clamp_min(1e-30).log(), torch.zeros_like(best_prob))
    confidence = torch.where(~keep.any(dim=1), best_prob.mean(dim=1), log_conf.sum(dim=1).exp())
    return sequences, confidence
