"""An LR range test (Smith 2017; fastai's and docTR's ``--find-lr``): the learning rate grows
exponentially from ``min_lr`` to ``max_lr`` over one short run of the real pipeline, and the
loss against it shows where training is fastest and where it diverges."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch.optim.lr_scheduler import ExponentialLR
from tqdm import tqdm

from ace_str.engine.trainer import Trainer


@dataclass(frozen=True)
class LrPoint:
    """One optimizer step of the test: its rate, its loss and the smoothed loss."""

    lr: float
    loss: float
    smoothed: float


def lr_range_test(
    trainer: Trainer,
    steps: Iterator,
    min_lr: float,
    max_lr: float,
    num_steps: int,
    smoothing: float = 0.98,
    diverge: float = 4.0,
) -> list[LrPoint]:
    """Train ``num_steps`` optimizer steps of ``steps`` (batches, or lists of batches under
    ``trainer.accumulate``) with the rate multiplied by a constant factor each step (torch's
    ``ExponentialLR``); stops early once the smoothed loss exceeds ``diverge`` times its best,
    or turns non-finite. The trainer's weights are changed: build one for the test alone."""
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < --min-lr < --max-lr, got {min_lr} and {max_lr}")
    if num_steps < 2:
        raise ValueError(f"--steps must be at least 2, got {num_steps}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"--smoothing must be in [0, 1), got {smoothing}")
    for group in trainer.optimizer.param_groups:
        group["lr"] = group["initial_lr"] = min_lr
    gamma = (max_lr / min_lr) ** (1 / (num_steps - 1))
    trainer.scheduler = ExponentialLR(trainer.optimizer, gamma)
    trainer.model.train()
    points: list[LrPoint] = []
    average, best = 0.0, math.inf
    for step in tqdm(range(num_steps), desc="lr range test"):
        lr = trainer.optimizer.param_groups[0]["lr"]
        out = trainer.train_step(next(steps))
        if out is None:  # a non-finite loss or gradient: the rate is past divergence
            break
        loss = float(out["loss"].detach())
        average = smoothing * average + (1 - smoothing) * loss
        smoothed = average / (1 - smoothing ** (step + 1))  # bias-corrected, as fastai does
        points.append(LrPoint(lr, loss, smoothed))
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > diverge * best:
            break
    return points


def suggest_lr(points: list[LrPoint]) -> float:
    """The rate where the smoothed loss falls fastest against log(lr) (steepest descent)."""
    if len(points) < 3:
        raise ValueError(f"need at least 3 finite points to suggest a rate, got {len(points)}")
    lrs = np.array([p.lr for p in points])
    slopes = np.gradient(np.array([p.smoothed for p in points]), np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])
