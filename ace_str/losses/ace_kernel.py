"""ACE cross-entropy (Eq. 8) and its gradient (Eq. 9) as two fused CPU kernels (numba).

PyTorch runs ACE as a few dozen separate ops, each a pass over memory or a dispatch; at 37
classes that costs several softmax passes. Here one pass per frame row computes the softmax,
its sum over time and the loss, and one more writes the gradient into the same buffer, with a
vectorisable exp, so ACE costs about what one ``torch.softmax`` does
(``scripts/bench_complexity.py`` measures it).

A label class whose summed probability is below ``MIN_LABEL_SUM`` (it underflowed, or nearly) is
redone in log space from the logits, so the loss and the gradient stay exact and finite.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

MIN_LABEL_SUM = 1e-30
_F = np.float32
# fastmath without "nnan"/"ninf": NaN marks the classes that are not redone in log space
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
def ace_forward_kernel(logits, counts, frames, probs, ratio, log_sum, frame_stats, n_exact, loss):
    """Per sample b: probs = softmax (0 on frames >= frames[b]), loss[b] = Eq. 8, and for Eq. 9
    ratio[b, k] = N_k / sum_t y^t_k. A label class below MIN_LABEL_SUM is redone in log space:
    ratio 0, its ln sum_t y^t_k in log_sum (NaN elsewhere), counted in n_exact[b]; each
    frame's max and softmax denominator stay in frame_stats[b] for its gradient.
    """
    batch, total, classes = logits.shape
    for b in prange(batch):
        valid = frames[b]
        probs[b, valid:] = 0.0
        loss[b] = 0.0
        n_exact[b] = 0
        y_sum = ratio[b]  # sum_t y^t_k is gathered here, then turned into r_k in place
        y_sum[:] = 0.0
        log_sum[b, :] = np.nan
        if valid <= 0:  # nothing to read: no loss, no gradient
            continue
        for t in range(valid):
            row = logits[b, t]
            out = probs[b, t]
            m = row[0]
            for k in range(1, classes):
                m = max(m, row[k])
            z = _F(0.0)
            for k in range(classes):
                e = _exp_nonpositive(row[k] - m)
                out[k] = e
                z += e
            inv = _F(1.0) / z
            for k in range(classes):
                v = out[k] * inv
                out[k] = v
                y_sum[k] += v
            frame_stats[b, 0, t] = m
            frame_stats[b, 1, t] = z
        weighted_log = 0.0
        for k in range(classes):
            n = counts[b, k]
            if n <= 0:
                y_sum[k] = 0.0
            elif y_sum[k] >= MIN_LABEL_SUM:
                weighted_log += n * math.log(y_sum[k])
                y_sum[k] = n / y_sum[k]
            else:
                exact = _log_sum_over_frames(logits[b], frame_stats[b], valid, k)
                log_sum[b, k] = exact
                weighted_log += n * exact
                y_sum[k] = 0.0
                n_exact[b] += 1
        loss[b] = math.log(valid) - weighted_log / valid


@njit(inline="always", fastmath=_FAST)
def _log_frame_total(stats, t):
    """ln sum_k exp(a^t_k), in float64: the frame's max plus ln of its shifted total."""
    return np.float64(stats[0, t]) + math.log(np.float64(stats[1, t]))


@njit(fastmath=_FAST, error_model="numpy")
def _log_sum_over_frames(logits, stats, valid, k):
    """ln sum_t y^t_k = logsumexp_t (a^t_k - ln sum_j exp(a^t_j)), exact where y underflows."""
    top = -np.inf
    for t in range(valid):
        top = max(top, np.float64(logits[t, k]) - _log_frame_total(stats, t))
    acc = 0.0
    for t in range(valid):
        acc += math.exp(np.float64(logits[t, k]) - _log_frame_total(stats, t) - top)
    return top + math.log(acc)


@njit(parallel=True, fastmath=_FAST, error_model="numpy", cache=True)
def ace_backward_kernel(probs, logits, counts, frames, ratio, log_sum, frame_stats, n_exact, scale):
    """probs becomes dL/da (Eq. 9): scale[b] / T (y^t_k s_t - q^t_k) with q^t_k = y^t_k r_k
    and s_t = sum_k q^t_k; for a class redone in log space q^t_k = N_k exp(ln y^t_k - ln sum).
    """
    batch, total, classes = probs.shape
    for b in prange(batch):
        valid = frames[b]
        if valid <= 0:
            continue
        c = _F(scale[b] / valid)
        r = ratio[b]
        if n_exact[b] == 0:
            for t in range(valid):
                g = probs[b, t]
                s = _F(0.0)
                for k in range(classes):
                    s += g[k] * r[k]
                for k in range(classes):
                    g[k] = g[k] * (s - r[k]) * c
            continue
        exact = np.empty(n_exact[b], np.int64)
        j = 0
        for k in range(classes):
            if log_sum[b, k] == log_sum[b, k]:
                exact[j] = k
                j += 1
        q = np.empty(n_exact[b], np.float32)
        for t in range(valid):
            g = probs[b, t]
            s = _F(0.0)
            for k in range(classes):
                s += g[k] * r[k]
            log_total = _log_frame_total(frame_stats[b], t)
            for j in range(exact.size):
                k = exact[j]
                v = counts[b, k] * math.exp(np.float64(logits[b, t, k]) - log_total - log_sum[b, k])
                q[j] = v
                s += v
            for k in range(classes):
                g[k] = g[k] * (s - r[k]) * c
            for j in range(exact.size):
                g[exact[j]] -= q[j] * c
