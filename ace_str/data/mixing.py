"""Several training sources mixed into every batch by fixed ratios (clovaai's MJ 0.5 + ST 0.5).

Each batch takes ``n_i`` samples from source ``i`` (ratios turned into whole counts by largest
remainder), each source walking its own resumable stream, so batch b's content depends on b
alone: a resumed run sees the batches an uninterrupted one would, and ranks shard each stream.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Sampler

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
    ) -> None:
        if not len(sources) == len(names) == len(ratios) == len(shuffles):
            raise ValueError("sources, names, ratios and shuffles must have one entry per source")
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

    def __getitem__(self, index: int) -> tuple[Any, str, str] | None:
        source = bisect.bisect_right(self._ends, index)
        start = self._ends[source - 1] if source else 0
        sample = self.sources[source][index - start]
        if sample is None:
            return None
        return sample[0], sample[1], self.names[source]

    def batch_sampler(
        self, batch_size: int, seed: int, start_sample: int, rank: int = 0, world_size: int = 1
    ) -> MixedBatchSampler:
        """Batches from global sample ``start_sample`` on (a multiple of the batch size)."""
        return MixedBatchSampler(
            self, batch_size, seed, start_sample // batch_size, rank, world_size
        )


class MixedBatchSampler(Sampler[list[int]]):
    """Endless batches of MixedDataset indices, ``counts[i]`` from source i in each.

    ``start_batch`` counts global batches (all ranks together); source i's stream starts at
    ``start_batch * counts[i]`` and is sharded over ranks like ``ResumableSampler``.
    """

    def __init__(
        self,
        dataset: MixedDataset,
        batch_size: int,
        seed: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.counts = batch_counts(dataset.ratios, batch_size)
        self.offsets = [end - len(s) for end, s in zip(dataset._ends, dataset.sources, strict=True)]
        self.samplers = [
            ResumableSampler(
                len(source), seed + 7919 * i, shuffle, start_batch * n, rank, world_size
            )
            for i, (source, shuffle, n) in enumerate(
                zip(dataset.sources, dataset.shuffles, self.counts, strict=True)
            )
        ]
        log.info(
            "mixing per batch of %d: %s",
            batch_size,
            ", ".join(f"{name} {n}" for name, n in zip(dataset.names, self.counts, strict=True)),
        )

    def __iter__(self) -> Iterator[list[int]]:
        streams = [iter(s) for s in self.samplers]
        while True:
            batch: list[int] = []
            for stream, n, offset in zip(streams, self.counts, self.offsets, strict=True):
                batch.extend(offset + next(stream) for _ in range(n))
            yield batch


def build_mixed_dataset(
    sources: Sequence[Any],
    synth_cfg: Any,
    charset: Any,
    max_label_length: int,
    transform: Any,
    wrap: Callable[[Dataset], Dataset] = lambda dataset: dataset,
) -> MixedDataset:
    """``data.train_sources`` entries: ``{roots: [...], ratio}`` (LMDBs or labelled folders) or
    ``{ratio}`` alone (the synthetic renderer, optionally ``synth: {...}`` overriding
    ``data.synth`` fields); ``name`` defaults to the first root's folder name or ``synth``.
    ``wrap`` is applied to each source (e.g. label shuffling, which expects plain
    ``(image, label)`` samples)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ace_str.data.folder import open_training_roots

    datasets, names, ratios, shuffles = [], [], [], []
    for i, source in enumerate(sources):
        roots = [str(r) for r in (source.get("roots") or [])]
        if "ratio" not in source:
            raise ValueError(f"data.train_sources[{i}] has no ratio")
        if roots:
            try:
                dataset = open_training_roots(roots, charset, max_label_length, transform)
            except FileNotFoundError as error:
                raise FileNotFoundError(f"data.train_sources[{i}].roots: {error}") from None
            datasets.append(wrap(dataset))
            shuffles.append(True)
            default = Path(roots[0]).name
        else:
            synth = OmegaConf.merge(synth_cfg, source.get("synth") or {})
            datasets.append(wrap(instantiate(synth, charset=charset, transform=transform)))
            shuffles.append(False)
            default = "synth"
        names.append(str(source.get("name") or default))
        ratios.append(float(source["ratio"]))
    return MixedDataset(datasets, names, ratios, shuffles)
