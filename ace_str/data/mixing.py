"""Several training sources mixed into every batch by fixed ratios (clovaai's MJ 0.5 + ST 0.5).

Each batch takes ``n_i`` samples from source ``i`` (ratios turned into whole counts by largest
remainder), each source walking its own resumable stream, so batch b's content depends on b
alone: a resumed run sees the batches an uninterrupted one would, and ranks shard each stream.
A source may join at a later batch (``start_step``, or ``start_fraction`` of the run's steps,
which follows a step count chosen by ``trainer.budget_minutes``): pre-training on synthetic
words, then fine-tuning on real ones mixed in, is one run. A source may also leave
(``stop_step``, ``stop_fraction``): a curriculum of easy words first is one run too.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import Dataset, Sampler

from ace_str.data.collate import Skip, unusable
from ace_str.data.drops import dropped_at_index
from ace_str.data.sampler import ResumableSampler

log = logging.getLogger(__name__)


def batch_counts(ratios: Sequence[float], batch_size: int) -> list[int]:
    """Whole samples per source for one batch: ratios normalised, largest remainders rounded up.

    Every source with a positive ratio gets at least one sample when the batch allows it.
    """
    if not ratios or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"source ratios must be non-negative and not all zero, got {ratios}")
    total = sum(ratios)
    exact = [batch_size * r / total for r in ratios]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: batch_size - sum(counts)]:
        counts[i] += 1
    for i, r in enumerate(ratios):  # a tiny ratio still feeds its source, taken from the largest
        if r > 0 and counts[i] == 0 and max(counts) > 1:
            counts[counts.index(max(counts))] -= 1
            counts[i] = 1
    return counts


def _opt(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


class MixedDataset(Dataset):
    """The concatenation of named sources; items carry their source name as a third field.

    ``shuffles[i]`` says whether source i's stream is shuffled (LMDBs) or read in order (the
    synthetic renderer, whose index i already is a fresh random sample).
    """

    def __init__(
        self,
        sources: Sequence[Dataset],
        names: Sequence[str],
        ratios: Sequence[float],
        shuffles: Sequence[bool],
        start_steps: Sequence[int] | None = None,
        start_fractions: Sequence[float | None] | None = None,
        stop_steps: Sequence[int | None] | None = None,
        stop_fractions: Sequence[float | None] | None = None,
    ) -> None:
        start_steps = [0] * len(sources) if start_steps is None else list(start_steps)
        fractions = [None] * len(sources) if start_fractions is None else list(start_fractions)
        if not (
            len(sources) == len(names) == len(ratios) == len(shuffles) == len(start_steps)
            and len(fractions) == len(sources)
        ):
            raise ValueError("sources, names, ratios and shuffles must have one entry per source")
        if any(f is not None and not 0 <= f <= 1 for f in fractions):
            raise ValueError(
                f"data.train_sources: start_fraction must be in [0, 1], got {fractions}"
            )
        self.start_steps = [int(s) for s in start_steps]
        self.start_fractions = [None if f is None else float(f) for f in fractions]
        pairs = list(zip(self.start_steps, self.start_fractions, strict=True))
        if any(s < 0 for s in self.start_steps) or not any(
            (f is None and s == 0) or f == 0 for s, f in pairs
        ):
            raise ValueError(
                "data.train_sources: start_step must be >= 0 and some source must start at 0, "
                f"got start_step {self.start_steps}, start_fraction {self.start_fractions}"
            )
        none = [None] * len(sources)
        self.stop_steps = none if stop_steps is None else [_opt(int, s) for s in stop_steps]
        self.stop_fractions = (
            none if stop_fractions is None else [_opt(float, f) for f in stop_fractions]
        )
        if len(self.stop_steps) != len(sources) or len(self.stop_fractions) != len(sources):
            raise ValueError("stop_steps and stop_fractions must have one entry per source")
        for i, (step, fraction) in enumerate(
            zip(self.stop_steps, self.stop_fractions, strict=True)
        ):
            if step is not None and fraction is not None:
                raise ValueError(
                    f"data.train_sources[{i}]: give stop_step or stop_fraction, not both"
                )
            if fraction is not None and not 0 < fraction <= 1:
                raise ValueError(
                    f"data.train_sources[{i}]: stop_fraction must be in (0, 1], got {fraction}"
                )
            if step is not None and step <= 0:
                raise ValueError(f"data.train_sources[{i}]: stop_step must be > 0, got {step}")
        if len(set(names)) != len(names):
            raise ValueError(f"data.train_sources: names must be unique, got {list(names)}")
        self.sources = list(sources)
        self.names = list(names)
        self.ratios = [float(r) for r in ratios]
        self.shuffles = list(shuffles)
        self._ends: list[int] = []
        for source in self.sources:
            self._ends.append((self._ends[-1] if self._ends else 0) + len(source))

    def __len__(self) -> int:
        return self._ends[-1]

    def drop_stats(self) -> Counter:
        """Every source's drops at indexing, summed."""
        dropped: Counter = Counter()
        for source in self.sources:
            dropped.update(dropped_at_index(source))
        return dropped

    def starts(self, total_steps: int) -> list[int]:
        """The step each source joins at in a run of ``total_steps`` steps."""
        return [
            step if fraction is None else round(fraction * total_steps)
            for step, fraction in zip(self.start_steps, self.start_fractions, strict=True)
        ]

    def stops(self, total_steps: int) -> list[int | None]:
        """The step each source leaves at in a run of ``total_steps`` steps (None: never)."""
        return [
            step if fraction is None else round(fraction * total_steps)
            for step, fraction in zip(self.stop_steps, self.stop_fractions, strict=True)
        ]

    def __getitem__(self, index: int) -> tuple[Any, str, str] | Skip | None:
        source = bisect.bisect_right(self._ends, index)
        start = self._ends[source - 1] if source else 0
        sample = self.sources[source][index - start]
        if unusable(sample):
            return sample
        return sample[0], sample[1], self.names[source]

    def batch_sampler(
        self,
        batch_size: int,
        seed: int,
        start_sample: int,
        rank: int = 0,
        world_size: int = 1,
        total_steps: int = 1,
        batches_per_step: int = 1,
    ) -> MixedBatchSampler:
        """Batches from global sample ``start_sample`` on (a multiple of the batch size);
        ``total_steps`` places the sources that join at a fraction of the run;
        ``batches_per_step`` is the number of batches each step accumulates."""
        return MixedBatchSampler(
            self,
            batch_size,
            seed,
            start_sample // batch_size,
            rank,
            world_size,
            total_steps,
            batches_per_step,
        )


class MixedBatchSampler(Sampler[list[int]]):
    """Endless batches of MixedDataset indices, ``counts[i]`` from source i in each.

    The batches form phases, one from each distinct ``start_step`` or ``stop_step`` (a step is
    ``batches_per_step`` batches per rank: ``trainer.accumulate``) on, each with its own
    counts; sources not yet started, or stopped, take none. ``start_batch`` counts global
    batches (all ranks together); source i's stream starts where the batches before it left
    it, and is sharded over ranks like ``ResumableSampler``.
    """

    def __init__(
        self,
        dataset: MixedDataset,
        batch_size: int,
        seed: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        total_steps: int = 1,
        batches_per_step: int = 1,
    ) -> None:
        starts = [s * batches_per_step for s in dataset.starts(total_steps)]
        stops = [None if s is None else s * batches_per_step for s in dataset.stops(total_steps)]
        for name, start, stop in zip(dataset.names, starts, stops, strict=True):
            if stop is not None and stop <= start:
                raise ValueError(
                    f"data.train_sources: source {name!r} stops (step {stop // batches_per_step}) "
                    f"before it starts (step {start // batches_per_step}) in a run of "
                    f"{total_steps} steps"
                )
        self.phase_starts = sorted({*starts, *(s for s in stops if s is not None)})
        self.phase_counts = []
        for start in self.phase_starts:
            ratios = [
                r if s <= start and (e is None or start < e) else 0.0
                for r, s, e in zip(dataset.ratios, starts, stops, strict=True)
            ]
            if not any(ratios):
                raise ValueError(
                    f"data.train_sources: no source left from step {start // batches_per_step} "
                    f"of {total_steps} (every source has stopped)"
                )
            counts = batch_counts(ratios, batch_size)
            counts = [n if r > 0 else 0 for n, r in zip(counts, ratios, strict=True)]
            self.phase_counts.append(counts)
            log.info(
                "mixing per batch of %d from step %d: %s",
                batch_size,
                start // batches_per_step,
                ", ".join(f"{name} {n}" for name, n in zip(dataset.names, counts, strict=True)),
            )
        self.start_step = start_batch // world_size
        self.offsets = [end - len(s) for end, s in zip(dataset._ends, dataset.sources, strict=True)]
        pairs = enumerate(zip(dataset.sources, dataset.shuffles, strict=True))
        self.samplers = [
            ResumableSampler(
                len(source),
                seed + 7919 * i,
                shuffle,
                self.taken(i, self.start_step) * world_size,
                rank,
                world_size,
            )
            for i, (source, shuffle) in pairs
        ]

    @property
    def counts(self) -> list[int]:
        """Samples per source in the batch the sampler starts at."""
        return self.counts_at(self.start_step)

    def counts_at(self, step: int) -> list[int]:
        return self.phase_counts[bisect.bisect_right(self.phase_starts, step) - 1]

    def taken(self, source: int, steps: int) -> int:
        """Samples source ``source`` gave one rank's first ``steps`` batches."""
        ends = [*self.phase_starts[1:], None]
        total = 0
        for start, end, counts in zip(self.phase_starts, ends, self.phase_counts, strict=True):
            span = max(0, min(steps, end if end is not None else steps) - start)
            total += span * counts[source]
        return total

    def __iter__(self) -> Iterator[list[int]]:
        streams = [iter(s) for s in self.samplers]
        step = self.start_step
        while True:
            batch: list[int] = []
            counts = self.counts_at(step)
            for stream, n, offset in zip(streams, counts, self.offsets, strict=True):
                batch.extend(offset + next(stream) for _ in range(n))
            step += 1
            yield batch
