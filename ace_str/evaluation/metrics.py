"""Recognition metrics, defined once for training, evaluation and the reproduction scripts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

_NON_ALNUM = re.compile(r"[^0-9a-z]")
PROTOCOLS = ("standard", "case_sensitive", "punctuation")


def normalize_text(text: str, protocol: str = "standard") -> str:
    """The comparison conventions of the literature.

    standard: lower-case, drop everything outside 0-9a-z (clovaai benchmark, PARSeq);
    case_sensitive: keep case, drop whitespace; punctuation: lower-case, keep punctuation.
    """
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
            if confidences is not None:
                self.confidence_sum += float(confidences[i])

    def merge(self, other: MetricTotals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, float]:
        n = max(self.samples, 1)
        return {
            "samples": self.samples,
            "word_accuracy": self.correct / n,
            "one_minus_ned": self.ned_sum / n,
            "cer": self.edits / max(self.truth_chars, 1),
            "count_precision": self.count_matched / max(self.predicted_chars, 1),
            "count_recall": self.count_matched / max(self.truth_chars, 1),
            "mean_confidence": self.confidence_sum / n,
        }
