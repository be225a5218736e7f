"""ACE cross-entropy (Eq. 8) and its gradient (Eq. 9) as one fused CPU kernel (numba).

PyTorch runs ACE as a few dozen separate ops, each a pass over memory or a dispatch; at 37
classes that costs several softmax passes. Here one call computes, sample by sample, the softmax
into the one logits-sized buffer, its sum over time, the loss, and then, while the sample is
still in the cache, the gradient in place; the exp is vectorisable arithmetic.
``scripts/bench_complexity.py`` measures it against one ``torch.softmax``.

A label class whose summed probability is below ``MIN_LABEL_SUM`` (it underflowed, or nearly) is
redone in log space from the logits, so the loss and the gradient stay exact and finite.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from ace_str.losses.ace_constants import (
    BAD_TARGET,
    KL,
    LOSS,
    MIN_FRAME_TOTAL,
    MIN_LABEL_SUM,
    STATUS,
    TOO_LONG,
)

_F = np.float32
# A frame total below MIN_FRAME_TOTAL (in units of exp(shift)) is redone with the frame's own
# max; terms below e^-87 are clamped there, so a label class whose summed probability is below
# MIN_LABEL_SUM could be off by that clamp and is redone in log space. The frame totals are
# float32, and so is the bound they are compared with.
_MIN_FRAME_TOTAL = _F(MIN_FRAME_TOTAL)
# fastmath without "nnan"/"ninf", so a NaN or infinite logit still ends in a NaN loss that the
# trainer reports; only _lanes_max assumes finite inputs (a NaN row stays NaN through exp anyway)
_FAST = {"contract", "afn", "reassoc", "arcp", "nsz"}


@intrinsic
def _float32_from_bits(typingctx, bits):
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


@njit(inline="always", fastmath=_FAST)
def _exp_nonpositive(x):
    """exp(x) for x <= 0 in float32 (Cephes expf, ~1e-7 relative); below e^-87 gives e^-87.

    libm's exp is a call per element; this one is arithmetic, so the loops around it vectorise.
    """
    x = max(x, _F(-87.0))
    n = np.floor(x * _F(1.44269504) + _F(0.5))
    f = x - n * _F(0.693359375) + n * _F(2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * f + _F(1.3981999507e-3)
    p = p * f + _F(8.3334519073e-3)
    p = p * f + _F(4.1665795894e-2)
    p = p * f + _F(1.6666665459e-1)
    p = p * f + _F(5.0000001201e-1)
    p = p * f * f + f + _F(1.0)
    return p * _float32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))


@njit(parallel=True, fastmath=_FAST, error_model="numpy", cache=True)
def ace_kernel(
    logits,
    targets,
    target_lengths,
    frames,
    out,
    class_stats,
    log_sum,
    frame_stats,
    sample_out,
    want_grad,
):
    """Per sample b, from (B, T, C) logits and (B, L) padded class indices:

    class_stats[b] = [N_k (N_blank = T - |S|), r_k = N_k / sum_t y^t_k], sample_out[b] =
    [Eq. 8, Eq. 8 - H(N̄) (the KL that ends at 0), STATUS: the number of label classes redone
    in log space, or BAD_TARGET / TOO_LONG, which leave the sample out], frame_stats[b] = each
    frame's shift and shifted softmax total; out[b] = the gradient of the mean of Eq. 8 over the
    samples kept (Eq. 9) when ``want_grad`` (else scratch); 0 on frames past frames[b] and on
    samples left out. A redone class has r_k = 0 and its ln sum_t y^t_k in log_sum. Returns
    (samples kept, their Eq. 8 sum, their KL sum).

    The gradient is written while the sample is still in the cache, so forward and backward
    together are one pass over the logits and one over ``out``. The exp runs over the whole
    sample at once (the kernel is for few classes), shifted by the sample's largest logit; a
    frame whose total falls below MIN_FRAME_TOTAL (its own max far below the sample's) is redone
    shifted by its own max, so no term that matters underflows.
    """
    kept = _label_pass(targets, target_lengths, frames, logits.shape, sample_out)
    for b in prange(logits.shape[0]):
        _ace_sample(
            b, kept, logits, targets, target_lengths, frames, out, class_stats, log_sum,
            frame_stats, sample_out, want_grad,
        )  # fmt: skip
    return _batch_sums(kept, sample_out)


@njit(fastmath=_FAST, error_model="numpy", cache=True)
def ace_kernel_serial(
    logits,
    targets,
    target_lengths,
    frames,
    out,
    class_stats,
    log_sum,
    frame_stats,
    sample_out,
    want_grad,
):
    """ace_kernel on the calling thread alone, for one-thread runs (no OpenMP pool to wake)."""
    kept = _label_pass(targets, target_lengths, frames, logits.shape, sample_out)
    for b in range(logits.shape[0]):
        _ace_sample(
            b, kept, logits, targets, target_lengths, frames, out, class_stats, log_sum,
            frame_stats, sample_out, want_grad,
        )  # fmt: skip
    return _batch_sums(kept, sample_out)


@njit(error_model="numpy")
def _label_pass(targets, target_lengths, frames, shape, sample_out):
    """Each sample's label STATUS first: the gradient of the batch mean needs the kept count."""
    batch, total, classes = shape
    kept = 0
    for b in range(batch):
        status = _label_status(targets[b], target_lengths[b], classes, frames[b], total)
        sample_out[b, STATUS] = status
        if status == 0:
            kept += 1
    return kept


@njit(error_model="numpy")
def _batch_sums(kept, sample_out):
    loss_sum = 0.0
    kl_sum = 0.0
    for b in range(sample_out.shape[0]):
        if sample_out[b, STATUS] >= 0:
            loss_sum += sample_out[b, LOSS]
            kl_sum += sample_out[b, KL]
    return kept, loss_sum, kl_sum


@njit(fastmath=_FAST, error_model="numpy")
def _ace_sample(
    b,
    kept,
    logits,
    targets,
    target_lengths,
    frames,
    out,
    class_stats,
    log_sum,
    frame_stats,
    sample_out,
    want_grad,
):
    """Sample b of ace_kernel: its softmax, Eq. 8, the KL and, when ``want_grad``, Eq. 9."""
    total, classes = logits.shape[1], logits.shape[2]
    valid = max(0, min(frames[b], total))
    sample_out[b, LOSS] = 0.0
    sample_out[b, KL] = 0.0
    if sample_out[b, STATUS] < 0 or valid == 0:  # left out: no loss, no gradient
        out[b] = 0.0
        return
    out[b, valid:] = 0.0
    counts = class_stats[b, 0]
    y_sum = class_stats[b, 1]  # sum_t y^t_k is gathered here, then turned into r_k in place
    counts[:] = 0.0
    y_sum[:] = 0.0
    length = target_lengths[b]
    for j in range(length):
        counts[targets[b, j]] += 1.0
    counts[0] = valid - length  # the blank's count replaces any blank in the padding
    _softmax_and_sums(logits[b], out[b], frame_stats[b], y_sum, valid)
    weighted_log = 0.0
    count_log = 0.0
    for k in range(classes):
        n = counts[k]
        if n <= 0:
            y_sum[k] = 0.0
            continue
        count_log += n * math.log(n)
        if y_sum[k] >= MIN_LABEL_SUM:
            weighted_log += n * math.log(y_sum[k])
            y_sum[k] = n / y_sum[k]
        else:
            exact = _log_sum_over_frames(logits[b], frame_stats[b], valid, k)
            log_sum[b, k] = exact
            weighted_log += n * exact
            y_sum[k] = 0.0
            sample_out[b, STATUS] += 1.0
    _write_eq8(sample_out[b], valid, weighted_log, count_log)
    if want_grad:
        _gradient(
            out[b],
            logits[b],
            valid,
            class_stats[b],
            log_sum[b],
            frame_stats[b],
            sample_out[b, STATUS] > 0,
            _F(1.0 / (valid * kept)),
        )


@njit(inline="always", error_model="numpy")
def _write_eq8(sample_row, valid, weighted_log, count_log):
    """Eq. 8 = ln T - (1/T) sum_k N_k ln sum_t y^t_k, and Eq. 8 - H(N̄) with
    H(N̄) = ln T - (1/T) sum_k N_k ln N_k, from the two weighted sums."""
    loss = math.log(valid) - weighted_log / valid
    sample_row[LOSS] = loss
    sample_row[KL] = loss - (math.log(valid) - count_log / valid)


@njit(error_model="numpy")
def _label_status(target, length, classes, frames, total):
    """0, or BAD_TARGET (a class outside [0, C), a length beyond the padding) or TOO_LONG."""
    if length < 0 or length > target.size:
        return BAD_TARGET
    for j in range(length):
        if target[j] < 0 or target[j] >= classes:
            return BAD_TARGET
    if length > max(0, min(frames, total)):
        return TOO_LONG
    return 0.0


@njit(inline="always", fastmath=_FAST, error_model="numpy")
def _softmax_and_sums(logits, exps, stats, y_sum, valid):
    """exps = exp(a^t_k - shift_t) on the first ``valid`` frames (the softmax before its division
    by the frame's total, which the gradient folds in), stats = each frame's shift and total,
    y_sum += sum over those frames of y^t_k."""
    classes = logits.shape[1]
    size = valid * classes
    flat_in = logits.reshape(logits.size)
    flat_out = exps.reshape(exps.size)
    shift = _lanes_max(flat_in, size)
    for i in range(size):
        flat_out[i] = _exp_nonpositive(flat_in[i] - shift)
    for t in range(valid):
        row = t * classes
        z = _F(0.0)
        for k in range(classes):
            z += flat_out[row + k]
        m = shift
        if z < _MIN_FRAME_TOTAL:  # this frame's max is far below the sample's: its own shift
            m = flat_in[row]
            for k in range(1, classes):
                m = max(m, flat_in[row + k])
            z = _F(0.0)
            for k in range(classes):
                e = _exp_nonpositive(flat_in[row + k] - m)
                flat_out[row + k] = e
                z += e
        stats[0, t] = m
        stats[1, t] = z
        inv = _F(1.0) / z
        for k in range(classes):
            y_sum[k] += flat_out[row + k] * inv


@njit(inline="always", fastmath=_FAST, error_model="numpy")
def _gradient(exps, logits, valid, class_stats, log_sum, frame_stats, redone, c):
    """exps becomes dL/da (Eq. 9): c (y^t_k s_t - q^t_k) with y^t_k = exps / the frame's total,
    q^t_k = y^t_k r_k and s_t = sum_k q^t_k; for a class redone in log space
    q^t_k = N_k exp(ln y^t_k - ln sum)."""
    classes = exps.shape[1]
    r = class_stats[1]
    if not redone:
        for t in range(valid):
            g = exps[t]
            inv = _F(1.0) / frame_stats[1, t]
            s = _F(0.0)
            for k in range(classes):
                s += g[k] * r[k]
            s *= inv
            scale = inv * c
            for k in range(classes):
                g[k] = g[k] * scale * (s - r[k])
        return
    q = np.empty(classes, np.float64)
    for t in range(valid):
        g = exps[t]
        inv = _F(1.0) / frame_stats[1, t]
        _exact_shares(logits, frame_stats, log_sum, class_stats[0], r, t, q)
        s = _F(0.0)
        for k in range(classes):
            s += g[k] * inv * r[k] + q[k]
        for k in range(classes):
            g[k] = (g[k] * inv * (s - r[k]) - q[k]) * c


@njit(fastmath=True, error_model="numpy")
def _lanes_max(values, size):
    """max(values[:size]) in 16 independent lanes, so LLVM vectorises it (a NaN is skipped here
    and still turns the loss into NaN through exp)."""
    lanes = np.full(16, values[0])
    full = size // 16
    for i in range(full):
        for j in range(16):
            x = values[16 * i + j]
            lanes[j] = x if x > lanes[j] else lanes[j]
    m = lanes[0]
    for j in range(1, 16):
        m = lanes[j] if lanes[j] > m else m
    for i in range(16 * full, size):
        m = values[i] if values[i] > m else m
    return m


@njit(inline="always")
def _log_frame_total(stats, t):
    """ln sum_k exp(a^t_k), in float64: the frame's shift plus ln of its shifted total."""
    return np.float64(stats[0, t]) + math.log(np.float64(stats[1, t]))


@njit(error_model="numpy")
def _log_sum_over_frames(logits, stats, valid, k):
    """ln sum_t y^t_k = logsumexp_t (a^t_k - ln sum_j exp(a^t_j)), exact where y underflows."""
    top = -np.inf
    for t in range(valid):
        top = max(top, np.float64(logits[t, k]) - _log_frame_total(stats, t))
    acc = 0.0
    for t in range(valid):
        acc += math.exp(np.float64(logits[t, k]) - _log_frame_total(stats, t) - top)
    return top + math.log(acc)


@njit(error_model="numpy")
def _exact_shares(logits, stats, log_sum, counts, ratio, t, out):
    """q^t_k = N_k y^t_k / sum_t y^t_k for the classes redone in log space (0 elsewhere)."""
    log_total = _log_frame_total(stats, t)
    for k in range(counts.size):
        out[k] = 0.0
        if counts[k] > 0 and ratio[k] == 0:
            out[k] = counts[k] * math.exp(np.float64(logits[t, k]) - log_total - log_sum[k])
