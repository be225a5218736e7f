"""Label-order shuffling (paper Fig. 4): ACE only counts characters, so training labels whose
order is scrambled should hurt it far less than CTC or attention. Training data only."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from torch.utils.data import Dataset

from ace_str.data.collate import unusable
from ace_str.data.drops import dropped_at_index


class ShuffledLabels(Dataset):
    """Wraps a dataset of (image, label) samples (or None for corrupt ones). For a fraction
    ``ratio`` of indices, chosen per (seed, index), the label's characters are randomly permuted;
    the choice and the permutation depend only on seed and index, so every epoch, worker and
    resumed run sees the same labels. ratio 0 leaves every label, 1 shuffles every label."""

    def __init__(self, dataset: Dataset, ratio: float, seed: int) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"data.shuffle_ratio must lie in [0, 1], not {ratio}")
        self.dataset = dataset
        self.ratio = float(ratio)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def drop_stats(self) -> Counter:
        """The wrapped dataset's drops at indexing (shuffling drops nothing)."""
        return dropped_at_index(self.dataset)

    def is_shuffled(self, index: int) -> bool:
        return self._rng(index).random() < self.ratio

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"ace_str.shuffle:{self.seed}:{index}")

    def __getitem__(self, index: int) -> Any:
        sample = self.dataset[index]
        if unusable(sample) or self.ratio == 0.0:
            return sample
        rng = self._rng(index)
        if rng.random() >= self.ratio:
            return sample
        image, label = sample
        chars = list(label)
        rng.shuffle(chars)
        return image, "".join(chars)
