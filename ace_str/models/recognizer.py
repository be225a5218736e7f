"""A recognizer is a backbone and a head; it knows no training logic."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ace_str.models.heads.base import Head


class Recognizer(nn.Module):
    """``head`` is a factory taking (in_features, num_classes): Hydra builds it with ``_partial_``
    so the classifier's width follows the backbone and the charset, never a repeated number."""

    def __init__(self, backbone: nn.Module, head: Callable[..., Head], num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head(in_features=backbone.out_features, num_classes=num_classes)
        self.num_classes = num_classes

    def forward(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        return self.head(self.backbone(images), targets)
