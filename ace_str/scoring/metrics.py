"""Recognition metrics, defined once for training, evaluation and the reproduction scripts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rapidfuzz.distance import Levenshtein
from torch import Tensor

_NON_ALNUM = re.compile(r"[^0-9a-z]")
PROTOCOLS = ("standard", "case_sensitive", "punctuation", "exact")


def normalize_text(text: str, protocol: str = "standard") -> str:
    """The comparison conventions of the literature.

    standard: lower-case, drop everything outside 0-9a-z (clovaai benchmark, PARSeq);
    case_sensitive: keep case, drop whitespace; punctuation: lower-case, keep punctuation;
    exact: compare as is (validation, where both sides are already in the run's charset, which
    may hold symbols the standard protocol would erase, such as Chinese).
    """
    if protocol == "exact":
        return text
    if protocol == "standard":
        return _NON_ALNUM.sub("", text.lower())
    if protocol == "case_sensitive":
        return "".join(text.split())
    if protocol == "punctuation":
        return "".join(text.lower().split())
    raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")


def one_minus_ned(prediction: str, truth: str) -> float:
    """1 - edit_distance / max(len(pred), len(gt)); 1.0 when both are empty."""
    longest = max(len(prediction), len(truth))
    if longest == 0:
        return 1.0
    return 1.0 - Levenshtein.distance(prediction, truth) / longest


def alignment_errors(prediction: str, truth: str) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of one minimal alignment of the prediction against
    the truth: a deletion is a truth character the prediction lacks, an insertion an extra
    predicted one. Ties between alignments of equal cost follow rapidfuzz's choice."""
    ops = Levenshtein.editops(truth, prediction)
    subs = sum(op.tag == "replace" for op in ops)
    dels = sum(op.tag == "delete" for op in ops)
    return subs, dels, len(ops) - subs - dels


def correct_accurate_rates(
    truth_chars: int, substitutions: int, deletions: int, insertions: int
) -> tuple[float, float]:
    """ICDAR 2013 Chinese handwriting competition (Yin et al. 2013), used in the paper's Sec. 4.2:
    CR = (N - S - D) / N and AR = (N - S - D - I) / N over all N truth characters."""
    n = max(truth_chars, 1)
    correct = truth_chars - substitutions - deletions
    return correct / n, (correct - insertions) / n


def count_matches(prediction: str, truth: str) -> int:
    """Characters shared as multisets: ACE's order-free view of a reading."""
    return sum((Counter(prediction) & Counter(truth)).values())


@dataclass
class MetricTotals:
    """Running sums; every reported figure is derived from these, so batches merge exactly."""

    samples: int = 0
    correct: int = 0
    ned_sum: float = 0.0
    edits: int = 0
    truth_chars: int = 0
    predicted_chars: int = 0
    count_matched: int = 0
    confidence_sum: float = 0.0
    substitutions: int = 0  # alignment errors for CR/AR (`alignment_errors`)
    deletions: int = 0
    insertions: int = 0

    def update(
        self,
        predictions: Sequence[str],
        truths: Sequence[str],
        confidences: Sequence[float] | None = None,
    ) -> None:
        for i, (pred, truth) in enumerate(zip(predictions, truths, strict=True)):
            self.samples += 1
            self.correct += int(pred == truth)
            self.ned_sum += one_minus_ned(pred, truth)
            self.edits += Levenshtein.distance(pred, truth)
            self.truth_chars += len(truth)
            self.predicted_chars += len(pred)
            self.count_matched += count_matches(pred, truth)
            subs, dels, ins = alignment_errors(pred, truth)
            self.substitutions += subs
            self.deletions += dels
            self.insertions += ins
            if confidences is not None:
                self.confidence_sum += float(confidences[i])

    def merge(self, other: MetricTotals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, float]:
        n = max(self.samples, 1)
        cr, ar = correct_accurate_rates(
            self.truth_chars, self.substitutions, self.deletions, self.insertions
        )
        return {
            "samples": self.samples,
            "word_accuracy": self.correct / n,
            "one_minus_ned": self.ned_sum / n,
            "cer": self.edits / max(self.truth_chars, 1),
            "count_precision": self.count_matched / max(self.predicted_chars, 1),
            "count_recall": self.count_matched / max(self.truth_chars, 1),
            "mean_confidence": self.confidence_sum / n,
            "correct_rate": cr,
            "accurate_rate": ar,
        }


def counting_errors(predicted: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class RMSE_k and relRMSE_k of the paper's Table 4 (Sec. 4.3) for (N, K) counts:
    RMSE_k = sqrt(mean_i (c^_ik - c_ik)^2), relRMSE_k = sqrt(mean_i (c^_ik - c_ik)^2 / (c_ik + 1)).
    """
    totals = CountTotals()
    totals.update(predicted, truth)
    return totals.per_class()


@dataclass
class CountTotals:
    """Running per-class sums of squared count errors, so batches merge exactly."""

    samples: int = 0
    squared: Tensor | None = None  # (K,) sum_i (c^_ik - c_ik)^2
    relative: Tensor | None = None  # (K,) sum_i (c^_ik - c_ik)^2 / (c_ik + 1)

    def update(self, predicted: Tensor, truth: Tensor) -> None:
        if predicted.shape != truth.shape or predicted.dim() != 2:
            raise ValueError(
                f"counts must both be (N, K); got {tuple(predicted.shape)} and {tuple(truth.shape)}"
            )
        error = (predicted.double() - truth.double()) ** 2
        self._add(truth.shape[0], error.sum(0), (error / (truth.double() + 1)).sum(0))

    def _add(self, samples: int, squared: Tensor | None, relative: Tensor | None) -> None:
        if squared is None:
            return
        if self.squared is None:
            self.squared = torch.zeros_like(squared)
            self.relative = torch.zeros_like(relative)
        if self.squared.shape != squared.shape:
            raise ValueError(f"{squared.numel()} classes do not merge with {self.squared.numel()}")
        self.samples += samples
        self.squared = self.squared + squared
        self.relative = self.relative + relative

    def merge(self, other: CountTotals) -> None:
        self._add(other.samples, other.squared, other.relative)

    def per_class(self) -> tuple[Tensor, Tensor]:
        """(RMSE_k, relRMSE_k), each (K,)."""
        if self.squared is None:
            raise ValueError("no counts were added")
        return (self.squared / self.samples).sqrt(), (self.relative / self.samples).sqrt()

    def summary(self) -> dict[str, float]:
        """m-RMSE and m-relRMSE: the per-class figures averaged over the K classes."""
        rmse, rel = self.per_class()
        return {
            "samples": self.samples,
            "m_rmse": rmse.mean().item(),
            "m_rel_rmse": rel.mean().item(),
        }
