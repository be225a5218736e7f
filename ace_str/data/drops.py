"""Records a training source dropped while indexing (bad labels), reported through wrappers.

LMDB and labelled-folder datasets answer ``drop_stats()``; the wrappers around them (label
shuffling, augmentation, mixing) pass the question on, so the trainer asks the dataset it
trains on and never walks its internals.
"""

from __future__ import annotations

from collections import Counter

from torch.utils.data import ConcatDataset, Dataset


def dropped_at_index(dataset: Dataset) -> Counter:
    """``dataset.drop_stats()``, summed over a ConcatDataset's parts; none for a dataset that
    drops nothing at indexing (the renderer)."""
    if isinstance(dataset, ConcatDataset):
        dropped: Counter = Counter()
        for part in dataset.datasets:
            dropped.update(dropped_at_index(part))
        return dropped
    report = getattr(dataset, "drop_stats", None)
    return report() if report is not None else Counter()
