"""Aggregation Cross-Entropy (Xie et al., CVPR 2019), one function per formula.

Notation follows the paper: ``y^t_k`` is the softmax output of frame ``t`` for class ``k``
(class 0 is the blank), ``T`` the number of frames, ``N_k`` how often class ``k`` occurs in
the label, with ``N_blank = T - |S|``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

MODES = ("cross_entropy", "regression", "reference")
ON_TOO_LONG = ("error", "skip")


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


DENSE_COLUMNS_FACTOR = 4  # below this many classes per label column, scale all classes at once
CHUNKS = 4  # the dense backward builds its (s_t - r_k) factor one batch slice at a time


def label_columns(targets: Tensor, target_lengths: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 1 + L) class of each label symbol, blank first, and its weight: N_blank, then 1s.

    Repeated symbols keep one column each, so summing weights over equal classes gives N_k;
    padding columns point at the blank with weight 0.
    """
    batch, max_len = targets.shape
    valid = torch.arange(max_len, device=targets.device) < target_lengths.unsqueeze(1)
    index = torch.cat([targets.new_zeros(batch, 1), targets * valid], 1).long()
    weight = torch.cat([(frames - target_lengths).unsqueeze(1), valid], 1)
    return index, weight


class FastACECrossEntropy(torch.autograd.Function):
    """Eq. 8 per sample with the analytic gradient of Eq. 9, in about two softmax passes.

    With r_k = N_k / sum_t y^t_k and s_t = sum_k r_k y^t_k, Eq. 9 reads
    dL/da^t_k = (y^t_k / T)(s_t - r_k). Forward keeps y = softmax(a), the one logits-sized
    buffer; backward turns it into the gradient in place. With few classes all columns are
    used and y is scaled by (s_t - r_k) a batch slice at a time. With many classes only the
    label's columns are gathered (r_k = 0 elsewhere): y is scaled by s_t and y^t_k r_k is
    scattered off those columns. Samples where a label class underflows in every frame are
    redone in log space from the logits, so the loss and the gradient stay exact and finite.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: Tensor,
        counts: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        frames: Tensor,
        mask: Tensor | None,
    ) -> Tensor:
        probs = torch.softmax(logits, dim=-1)
        if mask is not None:
            probs.mul_(mask.unsqueeze(-1))
        batch, total, num_classes = probs.shape
        info = torch.finfo(probs.dtype)
        tiny = info.tiny / info.eps  # sums below this may have lost terms to underflow
        y, w, columns = probs, counts.to(probs.dtype), None
        dense = num_classes <= DENSE_COLUMNS_FACTOR * (targets.shape[1] + 1)
        if dense:
            y_sum = probs.sum(dim=1).masked_fill_(w <= 0, 1.0)
            dense = float(y_sum.min()) >= tiny  # else the exact path below, on label columns
        if not dense:
            index, weight = label_columns(targets, target_lengths, frames)
            columns = index.unsqueeze(1).expand(batch, total, -1)
            w = weight.to(probs.dtype)
            y = probs.gather(2, columns)  # (B, T, U): y^t_k of the label's columns
            y_sum = y.sum(dim=1).masked_fill_(w <= 0, 1.0)
        log_y_sum = y_sum.log()
        if not dense and float(y_sum.min()) < tiny:  # redo those samples exactly
            bad = (y_sum < tiny).any(dim=1)
            log_y = torch.log_softmax(logits[bad], dim=-1).gather(2, columns[bad])
            if mask is not None:
                log_y = log_y.masked_fill(~mask[bad].unsqueeze(-1), float("-inf"))
            exact = torch.logsumexp(log_y, dim=1).masked_fill_(w[bad] <= 0, 0.0)
            log_y_sum[bad] = exact
            y[bad] = (log_y - exact.unsqueeze(1)).exp()  # y^t_k / sum_t y^t_k, kept as y
            y_sum[bad] = 1.0
        t = frames.to(probs.dtype)
        # Eq. 8: -sum_k N̄_k ln ȳ_k = ln T - (1/T) sum_columns w ln sum_t y^t_k
        per_sample = t.log() - (w * log_y_sum).sum(dim=1) / t
        ctx.save_for_backward(logits, columns, mask)
        ctx.probs, ctx.y, ctx.r, ctx.frames = probs, y, (w / y_sum).unsqueeze(-1), t
        return per_sample

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        logits, columns, mask = ctx.saved_tensors
        grad, ctx.probs = ctx.probs, None
        if grad is None:  # a second backward (retain_graph): y was spent, recompute it
            grad = torch.softmax(logits, dim=-1)
            if mask is not None:
                grad.mul_(mask.unsqueeze(-1))
        scale = (grad_out / ctx.frames).view(-1, 1, 1)
        y = grad if columns is None else ctx.y
        s = torch.bmm(y, ctx.r).mul_(scale)  # (B, T, 1): s_t times the upstream scale
        r = ctx.r.transpose(1, 2) * scale  # (B, 1, U): r_k times the upstream scale
        if columns is None:
            for grad_part, s_part, r_part in zip(
                grad.chunk(CHUNKS), s.chunk(CHUNKS), r.chunk(CHUNKS), strict=True
            ):
                grad_part.mul_(s_part - r_part)
        else:
            grad.mul_(s).scatter_add_(2, columns, ctx.y * r.neg_())
        return grad, None, None, None, None, None


def ace_cross_entropy_fast(
    logits: Tensor,
    counts: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    frames: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    """Eq. 8 per sample from raw logits, the value of ``ace_cross_entropy``, fast (Eq. 9)."""
    return FastACECrossEntropy.apply(logits, counts, targets, target_lengths, frames, mask)


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
    """H(N̄) per sample: the smallest value Eq. 8 can take, so loss - H(N̄) is a KL that ends at 0."""
    n_bar = counts / frames.float().unsqueeze(1)
    return -torch.where(n_bar > 0, n_bar * n_bar.log(), torch.zeros_like(n_bar)).sum(dim=1)


class ACETerms(NamedTuple):
    loss: Tensor  # batch mean of the chosen form
    kl: Tensor  # batch mean of loss - H(N̄), detached; 0 at a perfect fit (cross-entropy forms)
    skipped: int  # samples left out because their label is longer than their frames


class ACELoss(nn.Module):
    """ACE with the call of CTC: ``ACELoss()(logits, targets, target_lengths)``.

    ``logits`` are raw scores (B, T, C) or (B, H, W, C); ``targets`` (B, L) padded class indices;
    ``target_lengths`` (B,); optional ``input_lengths`` (B,) valid frames for 1D predictions.
    ``fast`` computes the cross-entropy form with ``FastACECrossEntropy`` (about two softmax
    passes for forward plus backward); off, with the composed ops of ``ace_cross_entropy``.
    """

    def __init__(
        self, mode: str = "cross_entropy", on_too_long: str = "error", fast: bool = True
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ACE mode must be one of {MODES}, not {mode!r}")
        if on_too_long not in ON_TOO_LONG:
            raise ValueError(f"on_too_long must be one of {ON_TOO_LONG}, not {on_too_long!r}")
        self.mode = mode
        self.on_too_long = on_too_long
        self.fast = fast

    def forward(
        self,
        logits: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        input_lengths: Tensor | None = None,
    ) -> Tensor:
        return self.terms(logits, targets, target_lengths, input_lengths).loss

    def terms(
        self,
        logits: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
        input_lengths: Tensor | None = None,
        names: list[str] | None = None,
    ) -> ACETerms:
        logits = flatten_prediction(logits)
        batch, total_frames, num_classes = logits.shape
        if input_lengths is not None and logits.dim() == 3:
            frames = input_lengths.to(logits.device).clamp(max=total_frames)
        else:
            frames = torch.full((batch,), total_frames, device=logits.device)
        target_lengths = target_lengths.to(logits.device)
        keep = self._check_lengths(target_lengths, frames, names)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()
            counts = character_counts(
                targets.to(logits.device), target_lengths, num_classes, frames
            )
            mask = None
            if input_lengths is not None or not (self.mode == "cross_entropy" and self.fast):
                mask = frame_mask(
                    total_frames,
                    frames if input_lengths is not None else None,
                    batch,
                    logits.device,
                )
            if self.mode == "reference":
                per_sample = ace_reference(logits, counts)
            elif self.mode == "cross_entropy" and self.fast:
                per_sample = ace_cross_entropy_fast(
                    logits, counts, targets.to(logits.device), target_lengths, frames, mask
                )
            else:
                log_probs = F.log_softmax(logits, dim=-1)
                if self.mode == "cross_entropy":
                    per_sample = ace_cross_entropy(log_probs, counts, mask, frames)
                else:
                    per_sample = ace_regression(log_probs, counts, mask)
            kl = per_sample.detach() - count_entropy(counts, frames)
        skipped = int((~keep).sum())
        if skipped == batch:
            zero = logits.sum() * 0.0
            return ACETerms(zero, zero.detach(), skipped)
        if skipped:
            per_sample, kl = per_sample[keep], kl[keep]
        return ACETerms(per_sample.mean(), kl.mean(), skipped)

    def _check_lengths(self, target_lengths: Tensor, frames: Tensor, names) -> Tensor:
        """A label longer than T would make N_blank negative: an error, or a counted skip."""
        keep = target_lengths <= frames
        if self.on_too_long == "error" and not bool(keep.all()):
            i = int((~keep).nonzero()[0])
            who = f"{names[i]!r}" if names is not None else f"batch index {i}"
            raise ValueError(
                f"ACE: sample {who} has a label of {int(target_lengths[i])} symbols but the "
                f"prediction has only {int(frames[i])} frames; shorten the label, widen the input, "
                "or set on_too_long=skip"
            )
        return keep
