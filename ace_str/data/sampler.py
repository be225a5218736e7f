"""An endless index stream whose position is a step count, so training resumes exactly."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Yields dataset indices forever, starting at sample ``start``.

    With ``shuffle`` each pass is a permutation seeded by (seed, pass), so sample n of the stream
    is the same whether the run was interrupted or not. The synthetic renderer needs no shuffle:
    index i already is a fresh random sample.

    Under data parallelism every rank walks the same global stream and keeps positions
    ``rank, rank + world_size, ...`` from ``start`` (a global position), so the ranks' shards
    are disjoint and together are exactly the single-process stream.
    """

    def __init__(
        self,
        length: int,
        seed: int = 0,
        shuffle: bool = True,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if length <= 0:
            raise ValueError("cannot sample from an empty dataset")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.start = start
        self.rank = rank
        self.world_size = world_size

    def _stream(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.length)
        while True:
            if self.shuffle:
                generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                order = torch.randperm(self.length, generator=generator)[offset:].tolist()
            else:
                order = range(offset, self.length)
            yield from order
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[int]:
        if self.world_size == 1:
            return self._stream()
        return itertools.islice(self._stream(), self.rank, None, self.world_size)
