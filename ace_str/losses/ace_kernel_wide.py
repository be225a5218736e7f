"""ACE cross-entropy (Eq. 8) and its gradient (Eq. 9) for many classes (a numba kernel).

At thousands of classes (7,357 for CASIA) a batch of logits is hundreds of MB. This kernel takes
a sample at a time: one pass over its logits writes each frame's exponentials into the gradient
buffer (shifted by the frame's first logit, so no pass for a maximum) and takes ln Z_t and the
label's few columns; a second pass, over that buffer while the sample is still in the cache,
scales it into y^t_k s_t and subtracts the label terms. Everything the label needs
(ln sum_t y^t_k, Eq. 8, q^t_k) is computed in log space from the label's own columns, so a class
whose probability underflows in every frame stays exact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ace_str.losses.ace_constants import KL, LOSS, STATUS
from ace_str.losses.ace_kernel import (
    _F,
    _FAST,
    _exp_nonpositive,
    _label_status,
    _write_eq8,
)


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
    frame_total = np.empty((batch, total), np.float32)  # each frame's shifted total z_t
    log_y = np.full((batch, total, width), -np.inf)  # ln y^t_k of the label's classes
    log_sum = np.zeros((batch, width), np.float64)
    scale = 1.0 / max(kept, 1)
    for b in prange(batch):  # a sample at a time, so its exponentials are still cached for pass 2
        _wide_sample(b, logits, frames, out, frame_total, log_y, classes_of, count_of, log_sum,
                     sample_out, want_grad, scale)  # fmt: skip
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
def _wide_sample(
    b, logits, frames, out, frame_total, log_y, classes_of, count_of, log_sum, sample_out,
    want_grad, scale,
):  # fmt: skip
    """Sample b: pass 1 writes each frame's exponentials into out and takes ln Z_t and the
    label's ln y^t_k; then Eq. 8 and the KL; pass 2 turns out into the gradient in place."""
    total = logits.shape[1]
    valid = max(0, min(frames[b], total))
    if sample_out[b, STATUS] != 0 or valid == 0:
        out[b] = 0.0
        return
    out[b, valid:] = 0.0
    for t in range(valid):
        shift, z = _exponentials(logits[b, t], out[b, t])
        frame_total[b, t] = z
        log_z = np.float64(shift) + math.log(np.float64(z))
        for u in range(count_of.shape[1]):
            if count_of[b, u] > 0:
                log_y[b, t, u] = np.float64(logits[b, t, classes_of[b, u]]) - log_z
    _sample_terms(b, valid, log_y, count_of, log_sum, sample_out)
    if not want_grad:
        return
    c = scale / valid
    q = np.zeros(count_of.shape[1], np.float64)  # q^t_k = N_k y^t_k / sum_t y^t_k, label classes
    for t in range(valid):
        g = out[b, t]
        for u in range(q.size):
            if count_of[b, u] > 0:
                q[u] = count_of[b, u] * math.exp(log_y[b, t, u] - log_sum[b, u])
        factor = _F(q.sum() * c) / frame_total[b, t]  # s_t c / z_t
        for k in range(g.size):
            g[k] *= factor
        for u in range(q.size):
            if count_of[b, u] > 0:
                g[classes_of[b, u]] -= _F(q[u] * c)


@njit(fastmath=_FAST, error_model="numpy")
def _exponentials(row, e):
    """e = exp(row - shift) and (shift, sum of e). The shift is the row's first logit, which
    needs no pass for a maximum (at thousands of classes that pass costs as much as the
    exponentials): the total is at least exp(0) = 1, so nothing that matters underflows, and
    only a logit more than ~88 above the first overflows it, when the row is redone shifted by
    its maximum (a NaN or inf logit ends in a NaN loss)."""
    first = row[0]
    z = _F(0.0)
    for k in range(row.size):
        e[k] = _exp_below_88(row[k] - first)
        z += e[k]
    if z < _F(3.0e38):  # finite and not NaN: the common case
        return first, z
    m = row[0]
    for k in range(1, row.size):
        m = max(m, row[k])
    z = _F(0.0)
    for k in range(row.size):
        e[k] = _exp_nonpositive(row[k] - m)
        z += e[k]
    return m, z


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
    _write_eq8(sample_out[b], valid, weighted_log, count_log)
