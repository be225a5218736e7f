"""Aggregation Cross-Entropy (Xie et al., CVPR 2019), one function per formula.

Notation follows the paper: ``y^t_k`` is the softmax output of frame ``t`` for class ``k``
(class 0 is the blank), ``T`` the number of frames, ``N_k`` how often class ``k`` occurs in
the label, with ``N_blank = T - |S|``.
"""

from __future__ import annotations

import logging
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ace_str.losses.ace_constants import BAD_TARGET, TOO_LONG
from ace_str.losses.ace_cpu import KERNEL_MAX_CLASSES, ace_terms_cpu, numba_kernels
from ace_str.losses.ace_fast import ace_cross_entropy_fast

log = logging.getLogger(__name__)

MODES = ("cross_entropy", "regression", "reference")
ON_TOO_LONG = ("error", "skip")
# What computes the cross-entropy form (Eq. 8 and its gradient); the other modes are composed
# ops only. All give the same value and gradient (tests/test_ace_loss.py); they differ in speed.
# kernel: the fused numba kernels of ace_cpu.py, for float32 CPU logits (ace_kernel.py up to
#   KERNEL_MAX_CLASSES classes, ace_kernel_wide.py beyond; numba's pool when torch has threads);
# analytic: ace_fast.FastACECrossEntropy, an autograd Function with the analytic gradient of
#   Eq. 9 in one logits-sized buffer, on any device and dtype;
# composed: ace_cross_entropy below, PyTorch ops differentiated by autograd (the readable form);
# auto: kernel where it can run (float32 or half CPU logits, numba imported), else analytic.
Backend = Literal["auto", "kernel", "analytic", "composed"]
BACKENDS: tuple[Backend, ...] = ("auto", "kernel", "analytic", "composed")
_HALF = (torch.float16, torch.bfloat16)  # cast to float32 first: ACE sums probabilities over time


def flatten_prediction(logits: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, H*W, C): a 2D map is read as T = HW frames (Eq. 10)."""
    if logits.dim() == 4:
        return logits.flatten(1, 2)
    if logits.dim() != 3:
        raise ValueError(f"ACE expects logits (B, T, C) or (B, H, W, C), got {tuple(logits.shape)}")
    return logits


def frame_mask(frames: int, input_lengths: Tensor | None, batch: int, device) -> Tensor:
    """(B, T) bool: which frames count; padded frames of narrow images are left out."""
    steps = torch.arange(frames, device=device).expand(batch, frames)
    if input_lengths is None:
        return torch.ones(batch, frames, dtype=torch.bool, device=device)
    return steps < input_lengths.to(device).unsqueeze(1)


def character_counts(
    targets: Tensor, target_lengths: Tensor, num_classes: int, frames: Tensor
) -> Tensor:
    """N_k for every class (B, C), with N_blank = T - |S| (Sec. 3.1, Fig. 2)."""
    batch, max_len = targets.shape
    valid = torch.arange(max_len, device=targets.device).unsqueeze(0) < target_lengths.unsqueeze(1)
    counts = torch.zeros(batch, num_classes, device=targets.device, dtype=torch.float32)
    counts.scatter_add_(1, targets.long() * valid, valid.float())
    counts[:, 0] = frames.float() - target_lengths.float()
    return counts


def ace_cross_entropy(log_probs: Tensor, counts: Tensor, mask: Tensor, frames: Tensor) -> Tensor:
    """Eq. 8, per sample: -sum_k N̄_k ln ȳ_k, with ȳ_k = (1/T) sum_t y^t_k and N̄_k = N_k / T.

    ln ȳ_k is a logsumexp over time of log y^t_k minus ln T, so no epsilon is needed and a class
    whose probability underflows everywhere still gives a finite loss and gradient.
    """
    log_y = log_probs.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    log_y_bar = torch.logsumexp(log_y, dim=1) - frames.float().log().unsqueeze(1)
    n_bar = counts / frames.float().unsqueeze(1)
    # 0 * ln ȳ must stay 0 even where ȳ is 0 (fully masked class), hence the where.
    terms = torch.where(n_bar > 0, n_bar * log_y_bar, torch.zeros_like(log_y_bar))
    return -terms.sum(dim=1)


def ace_regression(log_probs: Tensor, counts: Tensor, mask: Tensor) -> Tensor:
    """Eq. 4, per sample: (1/2) sum_k (N_k - y_k)^2 with y_k = sum_t y^t_k."""
    y = (log_probs.exp() * mask.unsqueeze(-1)).sum(dim=1)
    return 0.5 * (counts - y).pow(2).sum(dim=1)


def ace_reference(logits: Tensor, counts: Tensor) -> Tensor:
    """The authors' released code: softmax, + 1e-10, then the four formulas (Sec. 3.4)."""
    frames = logits.shape[1]
    y = logits.softmax(dim=-1) + 1e-10
    y_bar = y.sum(dim=1) / frames
    n_bar = counts / frames
    return -(torch.log(y_bar) * n_bar).sum(dim=1)


def count_entropy(counts: Tensor, frames: Tensor) -> Tensor:
    """H(N̄) per sample: the smallest value Eq. 8 can take, so loss - H(N̄) is a KL that ends at 0.

    -sum_k N̄_k ln N̄_k = ln T - (1/T) sum_k N_k ln N_k, with 0 ln 0 = 0.
    """
    t = frames.to(counts.dtype)
    return t.log() - torch.special.xlogy(counts, counts).sum(dim=1) / t


class ACETerms(NamedTuple):
    loss: Tensor  # batch mean of the chosen form
    kl: Tensor  # batch mean of loss - H(N̄), detached; 0 at a perfect fit (cross-entropy forms)
    skipped: int  # samples left out because their label is longer than their frames


class ACELoss(nn.Module):
    """ACE with the call of CTC: ``ACELoss()(logits, targets, target_lengths)``.

    ``logits`` are raw scores (B, T, C) or (B, H, W, C); ``targets`` (B, L) padded class indices;
    ``target_lengths`` (B,); optional ``input_lengths`` (B,) valid frames for 1D predictions.
    ``backend`` (one of BACKENDS, above) picks what computes the cross-entropy form; which one
    ran is logged once, at INFO, on first use. An explicit one that cannot run raises: at
    construction for a mode or a missing numba, at the first call for logits the kernels cannot
    take.
    """

    def __init__(
        self,
        mode: str = "cross_entropy",
        on_too_long: str = "error",
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ACE mode must be one of {MODES}, not {mode!r}")
        if on_too_long not in ON_TOO_LONG:
            raise ValueError(f"on_too_long must be one of {ON_TOO_LONG}, not {on_too_long!r}")
        if backend not in BACKENDS:
            raise ValueError(f"ACE backend must be one of {BACKENDS}, not {backend!r}")
        if backend in ("kernel", "analytic") and mode != "cross_entropy":
            raise ValueError(
                f"ACE backend={backend} computes the cross-entropy form (Eq. 8); mode={mode} "
                "runs on composed ops only: set backend to auto or composed"
            )
        if backend == "kernel" and numba_kernels() is None:
            raise ValueError(
                "ACE backend=kernel needs numba, which did not import (see the warning above): "
                "install numba, or set backend to auto or analytic"
            )
        self.mode = mode
        self.on_too_long = on_too_long
        self.backend = backend
        self._logged_backends: set[str] = set()
        self._logged_skip = False

    def forward(
        self,
        logits: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        input_lengths: Tensor | None = None,
    ) -> Tensor:
        return self.terms(logits, targets, target_lengths, input_lengths).loss

    def backend_for(self, logits: Tensor) -> tuple[str, str]:
        """(the backend that computes ACE on ``logits``, why): ``backend`` when set, else what
        auto picks. Raises ValueError when an explicit kernel cannot take the logits."""
        dtype = torch.float32 if logits.dtype in _HALF else logits.dtype
        kernel_takes = logits.device.type == "cpu" and dtype == torch.float32
        if self.backend == "kernel" and not kernel_takes:
            raise ValueError(
                f"ACE backend=kernel needs float32 CPU logits (half precision is cast to it), "
                f"got {dtype} on {logits.device}: set backend to auto or analytic"
            )
        if self.backend != "auto":
            return self.backend, "set explicitly"
        if self.mode != "cross_entropy":
            return "composed", f"auto: mode={self.mode} runs on composed ops only"
        if not kernel_takes:
            return "analytic", f"auto: {dtype} logits on {logits.device.type}, not float32 CPU"
        if numba_kernels() is None:
            return "analytic", "auto: float32 CPU logits, but numba did not import"
        return "kernel", "auto: float32 CPU logits and numba"

    def terms(
        self,
        logits: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        input_lengths: Tensor | None = None,
        names: list[str] | None = None,
    ) -> ACETerms:
        logits = flatten_prediction(logits)
        if logits.dtype in _HALF:
            logits = logits.float()
        backend = self._choose(logits)
        if backend == "kernel":
            terms = self._kernel_terms(logits, targets, target_lengths, input_lengths, names)
        else:
            terms = self._torch_terms(
                logits, targets, target_lengths, input_lengths, names, backend == "analytic"
            )
        if terms.skipped and not self._logged_skip:
            self._logged_skip = True
            log.warning(
                "ACE left out %d sample(s) whose label is longer than their frames "
                "(on_too_long=skip); from now on only counted, as ace_skipped in the head's "
                "loss output",
                terms.skipped,
            )
        return terms

    def _choose(self, logits: Tensor) -> str:
        """backend_for, logged the first time each backend runs."""
        backend, why = self.backend_for(logits)
        if backend not in self._logged_backends:
            self._logged_backends.add(backend)
            detail = ""
            if backend == "kernel":
                classes = logits.shape[-1]
                wide = classes > KERNEL_MAX_CLASSES
                detail = f"; {classes} classes: ace_kernel{'_wide' if wide else ''}"
            log.info("ACE (mode=%s) runs on backend=%s (%s%s)", self.mode, backend, why, detail)
        return backend

    def _torch_terms(
        self,
        logits: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        input_lengths: Tensor | None,
        names: list[str] | None,
        analytic: bool,
    ) -> ACETerms:
        """The terms on PyTorch ops: the analytic Function or the composed ops of the mode."""
        batch, total_frames, _ = logits.shape
        masked = input_lengths is not None
        if masked:
            frames = input_lengths.to(logits.device).clamp(max=total_frames)
        else:
            frames = torch.full((batch,), total_frames, device=logits.device)
        target_lengths = target_lengths.to(logits.device)
        keep = self._check_lengths(target_lengths, frames, names)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            per_sample, counts = self._per_sample(
                logits, targets, target_lengths, frames, masked, analytic
            )
            kl = per_sample.detach() - count_entropy(counts, frames)
        if keep is None:
            return ACETerms(per_sample.mean(), kl.mean(), 0)
        skipped = int((~keep).sum())
        if skipped == batch:
            zero = logits.sum() * 0.0
            return ACETerms(zero, zero.detach(), skipped)
        return ACETerms(per_sample[keep].mean(), kl[keep].mean(), skipped)

    def _kernel_terms(
        self,
        logits: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        input_lengths: Tensor | None,
        names: list[str] | None,
    ) -> ACETerms:
        """The same terms from the numba kernels (ace_cpu.py), which check labels themselves."""
        total_frames = logits.shape[1]

        def report(status: np.ndarray) -> int:
            bad = np.flatnonzero(status == BAD_TARGET)
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"ACE: sample {_who(i, names)} has a target class outside "
                    f"[0, {logits.shape[-1]}) or a length beyond its padding: "
                    f"{targets[i].tolist()} (length {int(target_lengths[i])})"
                )
            too_long = np.flatnonzero(status == TOO_LONG)
            if too_long.size and self.on_too_long == "error":
                i = int(too_long[0])
                frames = total_frames if input_lengths is None else int(input_lengths[i])
                frames = min(frames, total_frames)
                raise ValueError(_too_long_message(i, int(target_lengths[i]), frames, names))
            return int(too_long.size)

        loss, kl, skipped = ace_terms_cpu(
            numba_kernels(), logits, targets, target_lengths, input_lengths, report
        )
        return ACETerms(loss, kl, skipped)

    def _per_sample(
        self,
        logits: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        frames: Tensor,
        masked: bool,
        analytic: bool,
    ) -> tuple[Tensor, Tensor]:
        batch, total_frames, num_classes = logits.shape
        targets = targets.to(logits.device)
        counts = character_counts(targets, target_lengths, num_classes, frames)
        mask = None
        if masked or not analytic:
            mask = frame_mask(total_frames, frames if masked else None, batch, logits.device)
        if self.mode == "reference":
            return ace_reference(logits, counts), counts
        if analytic:
            return ace_cross_entropy_fast(
                logits, counts, targets, target_lengths, frames, mask
            ), counts
        log_probs = F.log_softmax(logits, dim=-1)
        if self.mode == "cross_entropy":
            return ace_cross_entropy(log_probs, counts, mask, frames), counts
        return ace_regression(log_probs, counts, mask), counts

    def _check_lengths(self, target_lengths: Tensor, frames: Tensor, names) -> Tensor | None:
        """A label longer than T would make N_blank negative: an error, or a counted skip.

        Returns which samples to keep, or None when all are kept.
        """
        keep = target_lengths <= frames
        if bool(keep.all()):
            return None
        if self.on_too_long == "error":
            i = int((~keep).nonzero()[0])
            raise ValueError(_too_long_message(i, int(target_lengths[i]), int(frames[i]), names))
        return keep


def _who(index: int, names: list[str] | None) -> str:
    return f"{names[index]!r}" if names is not None else f"batch index {index}"


def _too_long_message(index: int, length: int, frames: int, names: list[str] | None) -> str:
    return (
        f"ACE: sample {_who(index, names)} has a label of {length} symbols but the prediction "
        f"has only {frames} frames; shorten the label, widen the input, or set on_too_long=skip"
    )
