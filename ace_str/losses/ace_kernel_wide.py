"""ACE cross-entropy (Eq. 8) and its gradient (Eq. 9) for many classes (a numba kernel).

At thousands of classes (7,357 for CASIA) a batch of logits is hundreds of MB, so the time is
memory traffic. This kernel reads the logits twice and writes the gradient once: one pass takes
each frame's log-partition ln Z_t, the other writes y^t_k s_t and subtracts the few label terms.
Everything the label needs (ln sum_t y^t_k, Eq. 8, q^t_k) is computed in log space from the
label's own columns, so a class whose probability underflows in every frame stays exact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ace_str.losses.ace_kernel import (
    _FAST,
    KL,
    LOSS,
    STATUS,
    _exp_nonpositive,
    _label_status,
)

_F = np.float32


@njit(parallel=True, fastmath=_FAST, error_model="numpy", cache=True)
def ace_wide_kernel(logits, targets, target_lengths, frames, out, sample_out, want_grad):
    """Per sample b of (B, T, C) logits and (B, L) padded targets: sample_out[b] = [Eq. 8,
    Eq. 8 - H(N̄), STATUS (0, or BAD_TARGET / TOO_LONG, which leave the sample out)], and, when
    ``want_grad``, out = the gradient of the mean of Eq. 8 over the samples kept (Eq. 9), 0 on
    frames past frames[b] and on samples left out. Returns (kept, Eq. 8 sum, KL sum).

    With q^t_k = N_k y^t_k / sum_t y^t_k and s_t = sum_k q^t_k, Eq. 9 reads
    dL/da^t_k = (y^t_k s_t - q^t_k) / T; q is non-zero only on the label's classes.
    """
    batch, total, classes = logits.shape
    width = targets.shape[1] + 1  # room for the label's distinct classes, blank first
    classes_of = np.zeros((batch, width), np.int64)
    count_of = np.zeros((batch, width), np.float64)
    kept = 0
    for b in range(batch):
        sample_out[b, LOSS] = 0.0
        sample_out[b, KL] = 0.0
        status = _label_status(targets[b], target_lengths[b], classes, frames[b], total)
        sample_out[b, STATUS] = status
        if status == 0:
            kept += 1
            _distinct_counts(targets[b], target_lengths[b], min(frames[b], total), classes_of[b],
                             count_of[b])  # fmt: skip
    log_z = np.empty((batch, total), np.float64)
    log_y = np.full((batch, total, width), -np.inf)  # ln y^t_k of the label's classes
    for row in prange(batch * total):  # pass 1 over the logits: ln Z_t, and the label's columns
        b, t = row // total, row % total
        log_z[b, t] = _log_partition(logits[b, t])
        for u in range(width):
            if count_of[b, u] > 0:
                log_y[b, t, u] = np.float64(logits[b, t, classes_of[b, u]]) - log_z[b, t]
    log_sum = np.zeros((batch, width), np.float64)
    for b in prange(batch):
        valid = max(0, min(frames[b], total))
        if sample_out[b, STATUS] == 0 and valid > 0:
            _sample_terms(b, valid, log_y, count_of, log_sum, sample_out)
    if want_grad:
        scale = 1.0 / max(kept, 1)
        for row in prange(batch * total):  # pass 2: the gradient, written once
            b, t = row // total, row % total
            valid = max(0, min(frames[b], total))
            if sample_out[b, STATUS] != 0 or t >= valid:
                out[b, t] = 0.0
            else:
                _gradient_row(out[b, t], logits[b, t], log_z[b, t], log_y[b, t], classes_of[b],
                              count_of[b], log_sum[b], scale / valid)  # fmt: skip
    loss_sum = 0.0
    kl_sum = 0.0
    for b in range(batch):
        if sample_out[b, STATUS] == 0:
            loss_sum += sample_out[b, LOSS]
            kl_sum += sample_out[b, KL]
    return kept, loss_sum, kl_sum


@njit(error_model="numpy")
def _distinct_counts(target, length, valid, classes_of, count_of):
    """The label's distinct classes and N_k; slot 0 is the blank with N_blank = T - |S|."""
    used = 1
    count_of[0] = valid - length
    for j in range(length):
        if target[j] == 0:  # a blank inside the label: N_blank = T - |S| stands, as in ace_kernel
            continue
        slot = used
        for u in range(1, used):
            if classes_of[u] == target[j]:
                slot = u
        if slot == used:
            classes_of[slot] = target[j]
            used += 1
        count_of[slot] += 1.0


@njit(fastmath=_FAST, error_model="numpy")
def _log_partition(row):
    """ln sum_k exp(a_k). Shifted by the row's first logit, which needs no pass for a maximum
    (at thousands of classes that pass costs as much as the exponentials): the total is at least
    exp(0) = 1, so nothing that matters underflows, and only a logit more than ~88 above the first
    overflows it, when the row is redone shifted by its maximum."""
    first = row[0]
    z = _F(0.0)
    for k in range(row.size):
        z += _exp_below_88(row[k] - first)
    if z < _F(3.0e38):  # finite (and not NaN): the common case
        return np.float64(first) + math.log(np.float64(z))
    m = row[0]
    for k in range(1, row.size):
        m = max(m, row[k])
    if not math.isfinite(m):
        return np.float64(m) if m > 0 or m != m else -np.inf
    z = _F(0.0)
    for k in range(row.size):
        z += _exp_nonpositive(row[k] - m)
    return np.float64(m) + math.log(np.float64(z))


@njit(inline="always", fastmath=_FAST)
def _exp_below_88(x):
    """exp(x) for x up to 88 (_exp_nonpositive's arithmetic holds while 2^n stays finite);
    beyond, inf or a huge value that fails the caller's finiteness check."""
    return _exp_nonpositive(min(x, _F(88.5)))


@njit(error_model="numpy")
def _sample_terms(b, valid, log_y, count_of, log_sum, sample_out):
    """ln sum_t y^t_k of each label class (a logsumexp over time), Eq. 8 and the KL term."""
    weighted_log = 0.0
    count_log = 0.0
    for u in range(count_of.shape[1]):
        n = count_of[b, u]
        if n <= 0:
            continue
        top = -np.inf
        for t in range(valid):
            top = max(top, log_y[b, t, u])
        acc = 0.0
        for t in range(valid):
            acc += math.exp(log_y[b, t, u] - top)
        log_sum[b, u] = top + math.log(acc)
        weighted_log += n * log_sum[b, u]
        count_log += n * math.log(n)
    loss = math.log(valid) - weighted_log / valid
    sample_out[b, LOSS] = loss
    sample_out[b, KL] = loss - (math.log(valid) - count_log / valid)


@njit(fastmath=_FAST, error_model="numpy")
def _gradient_row(grad, row, log_z, log_y, classes_of, count_of, log_sum, c):
    """One frame: c (y^t_k s_t - q^t_k), y^t_k = exp(a^t_k - ln Z_t) in one sweep over the row."""
    s = 0.0
    for u in range(count_of.size):
        if count_of[u] > 0:
            s += count_of[u] * math.exp(log_y[u] - log_sum[u])
    shift = _F(log_z)
    factor = _F(s * c)
    for k in range(row.size):
        grad[k] = _exp_nonpositive(row[k] - shift) * factor
    for u in range(count_of.size):
        if count_of[u] > 0:
            grad[classes_of[u]] -= _F(count_of[u] * math.exp(log_y[u] - log_sum[u]) * c)
