"""The renderer's speed per core, for the scripts that time it (bench_train, bench_renderer)."""

from __future__ import annotations

import time

from torch.utils.data import Dataset


def render_rate(dataset: Dataset, num: int, warmup: int = 0, start: int = 0) -> float:
    """Samples per CPU second of ``dataset[start + warmup ...]`` in this process: the renderer's
    speed per core, read from ``time.process_time`` so that other processes on the machine do
    not distort it (set one torch thread first, as a DataLoader worker has). The warm-up samples
    open fonts at the sizes in use and are not timed."""
    for index in range(start, start + warmup):
        dataset[index]
    begin = time.process_time()
    for index in range(start + warmup, start + warmup + num):
        dataset[index]
    return num / max(time.process_time() - begin, 1e-9)
