"""A head that counts characters: pooled features, cross-entropy over the counts 1..max_count.

It trains the character counter of Sec. 4.1.2 with the ordinary Trainer: the target lengths
the collator already provides are the labels, so the Trainer never learns which head it runs.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from ace_str.models.heads.base import Head


class CountHead(Head):
    """(B, T, D) or (B, H, W, D) features -> per-frame (or per-cell) count logits, averaged into
    one (B, max_count) score by `pooled`; class k means k + 1 characters. Averaging the linear
    classifier's outputs equals classifying the averaged features, and keeping the frames keeps
    the logits shaped like every other head's (the Trainer reads frames off them).

    ``decode`` reads a count n as n copies of symbol 1, since a head decodes to class
    sequences: only their lengths carry meaning, use `counts` for the numbers themselves.
    ``num_classes`` (the charset's size) is accepted for the Recognizer's factory and unused.
    """

    def __init__(self, in_features: int, num_classes: int, max_count: int = 25) -> None:
        super().__init__()
        if max_count < 1:
            raise ValueError(f"max_count must be positive, got {max_count}")
        self.max_count = max_count
        self.classifier = nn.Linear(in_features, max_count)

    def forward(self, features: Tensor, targets: Tensor | None = None) -> Tensor:
        return self.classifier(features)

    @staticmethod
    def pooled(logits: Tensor) -> Tensor:
        """(B, ..., max_count) -> (B, max_count): the mean over every frame or cell."""
        return logits.flatten(1, -2).mean(dim=1) if logits.dim() > 2 else logits

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        labels = target_lengths.clamp(1, self.max_count) - 1
        logits = self.pooled(logits)
        loss = F.cross_entropy(logits.float(), labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "count_accuracy": accuracy.detach()}

    def counts(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """(B,) predicted character counts and their probabilities."""
        prob, index = self.pooled(logits).float().softmax(dim=1).max(dim=1)
        return index + 1, prob

    def decode(self, logits: Tensor) -> tuple[list[list[int]], Tensor]:
        counts, prob = self.counts(logits)
        return [[1] * int(n) for n in counts], prob
