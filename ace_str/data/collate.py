"""Batching word samples into image tensors and padded ACE/CTC targets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ace_str.data.charset import Charset

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Images ``(B, C, H, W)``, blank-padded targets ``(B, L)``, lengths ``(B,)`` and texts."""

    images: Tensor
    targets: Tensor
    target_lengths: Tensor
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return replace(
            self,
            images=self.images.to(device, non_blocking=non_blocking),
            targets=self.targets.to(device, non_blocking=non_blocking),
            target_lengths=self.target_lengths.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)`` so ``to(..., non_blocking=True)`` overlaps."""
        return replace(
            self,
            images=self.images.pin_memory(),
            targets=self.targets.pin_memory(),
            target_lengths=self.target_lengths.pin_memory(),
        )


class Collator:
    """DataLoader ``collate_fn``: drops None (corrupt) samples, stacks and encodes the rest.

    Returns None when every sample of a batch was None; the training loop skips those.
    ``encode_targets=False`` batches raw labels for scoring, where no targets are needed.
    ``dropped`` counts in the process that collates (each worker has its own copy).
    """

    def __init__(self, charset: Charset, encode_targets: bool = True) -> None:
        self.charset = charset
        self.encode_targets = encode_targets
        self.dropped = 0

    def __call__(self, samples: Sequence[tuple[Tensor, str] | None]) -> Batch | None:
        kept = [s for s in samples if s is not None]
        self.dropped += len(samples) - len(kept)
        if not kept:
            log.warning("a batch of %d samples held only corrupt samples", len(samples))
            return None
        images, texts = zip(*kept, strict=True)
        if not all(isinstance(image, Tensor) for image in images):
            raise TypeError("Collator needs tensor images: give the dataset a transform")
        if self.encode_targets:
            targets, lengths = self.charset.encode_batch(texts)
        else:  # evaluation on raw ground truth: texts only, which may hold any symbol
            targets = torch.zeros(len(texts), 0, dtype=torch.long)
            lengths = torch.zeros(len(texts), dtype=torch.long)
        return Batch(torch.stack(images), targets, lengths, list(texts))
