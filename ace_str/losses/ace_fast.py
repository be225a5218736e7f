"""A fast ACE cross-entropy (Eq. 8) with the analytic gradient of Eq. 9.

``ace_cross_entropy`` in ace.py is the readable form; this is the same value in about two passes
over the logits and one logits-sized buffer, which is what makes ACE cheap next to CTC.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

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
