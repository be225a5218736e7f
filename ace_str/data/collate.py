"""Batching word samples into image tensors and padded ACE/CTC targets."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch import Tensor

from ace_str.data.charset import Charset

log = logging.getLogger(__name__)


class Skip(NamedTuple):
    """One sample a dataset could not use: where it came from, its key and why."""

    source: str
    key: str
    reason: str


def unusable(sample: object) -> bool:
    """A dataset's answer for a record it could not use: a ``Skip`` saying which and why (or
    None, from a dataset that does not say)."""
    return sample is None or isinstance(sample, Skip)


@dataclass
class Batch:
    """Images ``(B, C, H, W)``, blank-padded targets ``(B, L)``, lengths ``(B,)`` and texts.

    ``skipped`` lists the samples dropped while loading this batch (counted by the trainer);
    ``sources`` counts kept samples per named source when the dataset tags them (mixing).
    """

    images: Tensor
    targets: Tensor
    target_lengths: Tensor
    texts: list[str]
    skipped: list[Skip] = field(default_factory=list)
    sources: Counter = field(default_factory=Counter)

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
    """DataLoader ``collate_fn``: drops skipped samples, stacks and encodes the rest.

    A dataset answers a record it cannot use with a ``Skip`` (see ``unusable``); the batch
    carries them in ``skipped``, so they reach the trainer as values from whichever worker met
    them. Returns None when every sample of a batch was skipped; the training loop skips those,
    and their ``Skip``s travel with the next batch this collator (this worker's copy) makes.
    Samples may be ``(image, text)`` or ``(image, text, source)`` (see ``ace_str.data.mixing``).
    ``max_label_length`` drops (and records) labels longer than the model can emit, a last
    guard so one bad label cannot stop a run mid-epoch. ``encode_targets=False`` batches raw
    labels for scoring, where no targets are needed. ``dropped`` counts in the collating process.
    """

    def __init__(
        self, charset: Charset, encode_targets: bool = True, max_label_length: int | None = None
    ) -> None:
        self.charset = charset
        self.encode_targets = encode_targets
        self.max_label_length = max_label_length
        self.dropped = 0
        self._carried: list[Skip] = []  # skips of an all-skipped batch, for the next batch

    def _usable(self, sample) -> bool:
        if sample is None:
            self._carried.append(Skip("dataset", "?", "no_sample"))
            return False
        if isinstance(sample, Skip):
            self._carried.append(sample)
            return False
        text = sample[1]
        if self.encode_targets and self.max_label_length and len(text) > self.max_label_length:
            source = sample[2] if len(sample) > 2 else "batch"
            self._carried.append(Skip(str(source), repr(text[:40]), "too_long"))
            return False
        return True

    def __call__(self, samples: Sequence[tuple | Skip | None]) -> Batch | None:
        kept = [s for s in samples if self._usable(s)]
        self.dropped += len(samples) - len(kept)
        if not kept:
            log.warning("a batch of %d samples held only skipped samples", len(samples))
            return None
        images, texts = [s[0] for s in kept], [s[1] for s in kept]
        sources = Counter(s[2] for s in kept if len(s) > 2)
        if not all(isinstance(image, Tensor) for image in images):
            raise TypeError("Collator needs tensor images: give the dataset a transform")
        if self.encode_targets:
            targets, lengths = self.charset.encode_batch(texts)
        else:  # evaluation on raw ground truth: texts only, which may hold any symbol
            targets = torch.zeros(len(texts), 0, dtype=torch.long)
            lengths = torch.zeros(len(texts), dtype=torch.long)
        skipped, self._carried = self._carried, []
        return Batch(torch.stack(images), targets, lengths, texts, skipped, sources)
