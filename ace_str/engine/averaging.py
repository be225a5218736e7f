"""Weight averaging (``trainer.ema``, ``trainer.swa``): the last steps of a short run are noisy,
and an average of the weights along the way reads better than any one of them (PARSeq averages
the last quarter of training, MMOCR keeps an EMA). Built on torch's ``AveragedModel``.

Checkpoint layout when averaging is on: ``model`` holds the averaged weights, what validation,
best.ckpt, ``evaluate.py`` and ``read.py`` use; ``raw_model`` the training weights, which a
resumed run trains on; ``averaged_count`` how many steps the average holds (0: none yet, and
``model`` is then the training weights too).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn

MultiAvgFn = Callable[[list[Tensor], list[Tensor], Tensor | int], None]


def _floats_only(average: MultiAvgFn) -> MultiAvgFn:
    """``average`` for floating-point tensors; integer buffers (BatchNorm's
    ``num_batches_tracked``) are counters, copied from the model: torch's SWA update cannot
    divide them. ``AveragedModel`` groups tensors by dtype, so each call holds one kind."""

    def update(averaged: list[Tensor], current: list[Tensor], count: Tensor | int) -> None:
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            average(averaged, current, count)
        else:
            torch._foreach_copy_(averaged, current)

    return update


class WeightAverage:
    """An average of ``model``'s parameters and buffers (BatchNorm statistics averaged alike,
    ``use_buffers=True``), updated after each optimizer step.

    ``ema`` (a decay in (0, 1)): e_1 = w_1, e_n = ema * e_{n-1} + (1 - ema) * w_n.
    ``swa`` (a start fraction in [0, 1)): the uniform mean of the weights after every step past
    ``swa * max_steps``; ``max_steps`` is read at each update, so a plan made by
    ``trainer.budget_minutes`` moves the start with it. Exactly one of the two is set.
    """

    def __init__(self, model: nn.Module, ema: float | None = None, swa: float | None = None):
        if (ema is None) == (swa is None):
            raise ValueError(
                f"weight averaging takes one of trainer.ema or trainer.swa (the other null), "
                f"got ema={ema}, swa={swa}"
            )
        if ema is not None and not 0.0 < ema < 1.0:
            raise ValueError(f"trainer.ema is a decay in (0, 1), e.g. 0.999; got {ema}")
        if swa is not None and not 0.0 <= swa < 1.0:
            raise ValueError(f"trainer.swa is a start fraction in [0, 1), e.g. 0.75; got {swa}")
        self.ema = ema
        self.swa = swa
        average = get_ema_multi_avg_fn(ema) if ema is not None else get_swa_multi_avg_fn()
        self.averaged = AveragedModel(model, multi_avg_fn=_floats_only(average), use_buffers=True)

    @property
    def module(self) -> nn.Module:
        """The averaged copy of the model (same keys as the model's state dict)."""
        return self.averaged.module

    @property
    def count(self) -> int:
        """Steps averaged so far; 0 until the first update."""
        return int(self.averaged.n_averaged.item())

    def start_step(self, max_steps: int) -> int:
        """Steps after which averaging begins (0 for EMA)."""
        return 0 if self.swa is None else math.floor(self.swa * max_steps)

    def update(self, model: nn.Module, step: int, max_steps: int, force: bool = False) -> None:
        """Fold ``model`` in after optimizer step ``step`` (1-based) if averaging has begun;
        ``force`` folds it in regardless (the budget probe times the update it will undo)."""
        if force or step > self.start_step(max_steps):
            self.averaged.update_parameters(model)

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights and ``n_averaged`` (for the budget probe's snapshot)."""
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.averaged.load_state_dict(state)

    def restore(self, weights: dict[str, Tensor], count: int) -> None:
        """Set the average from a checkpoint's ``model`` weights and ``averaged_count``."""
        if count > 0:
            self.module.load_state_dict(weights)
        self.averaged.n_averaged.fill_(count)


def build_average(model: nn.Module, ema: float | None, swa: float | None) -> WeightAverage | None:
    """A `WeightAverage` when ``trainer.ema`` or ``trainer.swa`` is set, else None."""
    if ema is None and swa is None:
        return None
    return WeightAverage(model, ema, swa)
