"""A fast ACE cross-entropy (Eq. 8) with the analytic gradient of Eq. 9.

``ace_cross_entropy`` in ace.py is the readable form; this is the same value with one
logits-sized buffer and no autograd graph over the logits, which is what makes ACE cheap next to
CTC (measured by ``scripts/bench_complexity.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from ace_str.losses.ace_constants import MIN_FRAME_TOTAL, MIN_LABEL_SUM

DENSE_COLUMNS_FACTOR = 4  # up to this many classes per label column, use every class column
# The exponential path keeps e = exp(a - shift) without normalising each frame. A frame total
# outside [MIN_FRAME_TOTAL, MAX_FRAME_TOTAL] could have lost terms to underflow or overflow, and
# a label class whose summed probability is below MIN_LABEL_SUM (times its count) gives r_k
# beyond 1 / MIN_LABEL_SUM: such batches are redone, shifted by each sample's largest logit,
# then on the exact label-column path.
MAX_FRAME_TOTAL = 1e30
BACKWARD_CHUNKS = 4


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


def eq8_from_sums(weight: Tensor, y_sum: Tensor, frames: Tensor) -> Tensor:
    """Eq. 8: -sum_k N̄_k ln ȳ_k = ln T - (1/T) sum_k N_k ln sum_t y^t_k (0 ln 0 = 0)."""
    return frames.log() - torch.special.xlogy(weight, y_sum).sum(dim=1) / frames


class FastACECrossEntropy(torch.autograd.Function):
    """Eq. 8 per sample with the analytic gradient of Eq. 9.

    With r_k = N_k / sum_t y^t_k and s_t = sum_k r_k y^t_k, Eq. 9 reads
    dL/da^t_k = (y^t_k / T)(s_t - r_k).

    Few classes (the exponential path): e = exp(a), the one logits-sized buffer, is never
    normalised: y^t_k = e^t_k / z_t with the frame totals z_t from one matrix product, and
    sum_t y^t_k and s_t are batched matrix products with 1/z_t folded in. The gradient,
    e^t_k (s_t - r_k) / (z_t T), is e times a rank-two matrix, written into e in place.
    Softmax is shift-invariant, so when a frame total leaves the safe range the same is done
    with exp(a - max of the sample).
    Many classes, or a batch that still could have underflowed (the label-column path):
    y = softmax(a); only the label's columns are gathered (r_k = 0 elsewhere), y is scaled by
    s_t in place and y^t_k r_k is scattered off those columns. Samples where a label class
    underflows in every frame are redone in log space from the logits, so the loss and the
    gradient stay exact and finite.
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
        t = frames.to(logits.dtype)
        ctx.frames, ctx.mask, ctx.columns = t, mask, None
        ctx.save_for_backward(logits)
        if logits.shape[-1] <= DENSE_COLUMNS_FACTOR * (targets.shape[1] + 1):
            counts = counts.to(logits.dtype)
            for shifted in (False, True):
                per_sample = _exponential_forward(ctx, logits, counts, t, shifted)
                if per_sample is not None:
                    return per_sample
        return _label_columns_forward(ctx, logits, targets, target_lengths, frames, t)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        scale = (grad_out / ctx.frames).view(-1, 1, 1)
        if ctx.columns is None:
            grad = _exponential_backward(ctx, scale)
        else:
            grad = _label_columns_backward(ctx, scale)
        return grad, None, None, None, None, None


def _exponential(logits: Tensor, shifted: bool) -> Tensor:
    if shifted:
        return (logits - logits.amax(dim=(1, 2), keepdim=True)).exp_()
    return logits.exp()


def _exponential_forward(
    ctx: FunctionCtx, logits: Tensor, counts: Tensor, t: Tensor, shifted: bool
) -> Tensor | None:
    """Eq. 8 from e = exp(a) (or exp(a - max)); None when a term could have been lost."""
    e = _exponential(logits, shifted)
    totals = e @ e.new_ones(e.shape[-1], 1)  # (B, T, 1): z_t = sum_k e^t_k
    low, high = torch.aminmax(totals)
    if not MIN_FRAME_TOTAL <= float(low) <= float(high) <= MAX_FRAME_TOTAL:
        return None
    inv_totals = totals.reciprocal_()  # 1 / z_t, 0 on frames the mask leaves out
    if ctx.mask is not None:
        inv_totals.mul_(ctx.mask.unsqueeze(-1))
    y_sum = torch.bmm(inv_totals.transpose(1, 2), e)  # (B, 1, C): sum_t y^t_k
    r = counts.unsqueeze(1) / y_sum.clamp_min(MIN_LABEL_SUM)  # (B, 1, C): r_k
    if float(r.amax()) * MIN_LABEL_SUM >= 1.0:
        return None
    ctx.e, ctx.inv_totals, ctx.shifted = e, inv_totals, shifted
    ctx.ones_r = torch.cat([torch.ones_like(r), r], dim=1)  # (B, 2, C): [1; r]
    return eq8_from_sums(counts, y_sum.squeeze(1), t)


def _exponential_backward(ctx: FunctionCtx, scale: Tensor) -> Tensor:
    e, ctx.e = ctx.e, None
    if e is None:  # a second backward (retain_graph): e was spent, recompute it
        e = _exponential(ctx.saved_tensors[0], ctx.shifted)
    # dL/da^t_k = e^t_k c_t (s_t - r_k) with c_t = upstream scale / (z_t T): e times the
    # rank-two matrix [c s, -c] (T x 2) @ [1; r] (2 x C). e @ [1; r]^T gives [z, z s] at once.
    ones_r = ctx.ones_r
    sums = torch.bmm(e, ones_r.transpose(1, 2))  # [z, z s]
    sums.mul_(ctx.inv_totals.square().mul_(scale))  # [c, c s]
    left = sums @ _SWAP.to(sums)  # [c s, -c]
    # formed a slice of the batch at a time in a small buffer and multiplied into e in place:
    # holding a second logits-sized buffer makes the allocator hand memory back to the OS
    # and fault it in again on every call, which costs more than the arithmetic
    step = -(-e.shape[0] // BACKWARD_CHUNKS)
    scratch = e.new_empty(min(step, e.shape[0]), *e.shape[1:])
    for start in range(0, e.shape[0], step):
        part = e[start : start + step]
        factor = scratch[: part.shape[0]]
        part.mul_(torch.bmm(left[start : start + step], ones_r[start : start + step], out=factor))
    return e


_SWAP = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # [x, y] @ _SWAP = [y, -x]


def _label_columns_forward(
    ctx: FunctionCtx,
    logits: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    frames: Tensor,
    t: Tensor,
) -> Tensor:
    mask = ctx.mask
    probs = torch.softmax(logits, dim=-1)
    if mask is not None:
        probs.mul_(mask.unsqueeze(-1))
    batch, total, _ = probs.shape
    info = torch.finfo(probs.dtype)
    tiny = info.tiny / info.eps  # sums below this may have lost terms to underflow
    index, weight = label_columns(targets, target_lengths, frames)
    columns = index.unsqueeze(1).expand(batch, total, -1)
    w = weight.to(probs.dtype)
    y = probs.gather(2, columns)  # (B, T, U): y^t_k of the label's columns
    y_sum = y.sum(dim=1).masked_fill_(w <= 0, 1.0)
    if float(y_sum.min()) < tiny:  # redo those samples exactly, in log space
        bad = (y_sum < tiny).any(dim=1)
        log_y = torch.log_softmax(logits[bad], dim=-1).gather(2, columns[bad])
        if mask is not None:
            log_y = log_y.masked_fill(~mask[bad].unsqueeze(-1), float("-inf"))
        exact = torch.logsumexp(log_y, dim=1).masked_fill_(w[bad] <= 0, 0.0)
        per_sample = t.log() - (w * y_sum.log()).sum(dim=1) / t
        per_sample[bad] = t[bad].log() - (w[bad] * exact).sum(dim=1) / t[bad]
        y[bad] = (log_y - exact.unsqueeze(1)).exp()  # y^t_k / sum_t y^t_k, kept as y
        y_sum[bad] = 1.0
    else:
        per_sample = eq8_from_sums(w, y_sum, t)
    ctx.columns, ctx.probs, ctx.y, ctx.r = columns, probs, y, (w / y_sum).unsqueeze(-1)
    return per_sample


def _label_columns_backward(ctx: FunctionCtx, scale: Tensor) -> Tensor:
    grad, ctx.probs = ctx.probs, None
    if grad is None:  # a second backward (retain_graph): y was spent, recompute it
        grad = torch.softmax(ctx.saved_tensors[0], dim=-1)
        if ctx.mask is not None:
            grad.mul_(ctx.mask.unsqueeze(-1))
    s = torch.bmm(ctx.y, ctx.r).mul_(scale)  # (B, T, 1): s_t times the upstream scale
    r = ctx.r.transpose(1, 2) * scale  # (B, 1, U): r_k times the upstream scale
    return grad.mul_(s).scatter_add_(2, ctx.columns, ctx.y * r.neg_())


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
