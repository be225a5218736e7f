"""ACE head: a per-frame (or per-cell) linear classifier trained with ACE, decoded by counting."""

from __future__ import annotations

from torch import Tensor, nn

from ace_str.losses.ace import ACELoss
from ace_str.models.decoding import ace_greedy_decode
from ace_str.models.heads.base import Head


class ACEHead(Head):
    """Works on (B, T, D) and (B, H, W, D) features alike; a 1x1 classifier over the 2D map."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        mode: str = "cross_entropy",
        on_too_long: str = "error",
        read_order: str = "column",
    ) -> None:
        super().__init__()
        self.classifier = nn.Linear(in_features, num_classes)
        self.criterion = ACELoss(mode=mode, on_too_long=on_too_long)
        self.read_order = read_order

    def forward(self, features: Tensor, targets: Tensor | None = None) -> Tensor:
        return self.classifier(features)

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        terms = self.criterion.terms(logits, targets, target_lengths)
        return {"loss": terms.loss, "ace_kl": terms.kl}

    def decode(self, logits: Tensor) -> tuple[list[list[int]], Tensor]:
        return ace_greedy_decode(logits, self.read_order)
