"""Limits and status codes shared by ACE's fast paths, defined once: ace_fast.py (PyTorch ops),
the numba kernels (ace_kernel.py, ace_kernel_wide.py) and their driver ace_cpu.py.

Plain Python numbers, so reading them needs no numba. The kernels compile with ``cache=True``,
and numba's cache is keyed on each kernel's own file, not on this one: after changing a value
here, touch ace_kernel.py and ace_kernel_wide.py (or delete their ``__pycache__``) so the
kernels are compiled again with it.
"""

from __future__ import annotations

import math

# A frame whose softmax total (in units of exp(its shift)) is below MIN_FRAME_TOTAL could have
# lost terms to underflow: ace_fast redoes the batch shifted by each sample's largest logit, then
# on its label-column path; ace_kernel redoes that frame shifted by its own largest logit.
MIN_FRAME_TOTAL = math.exp(-20.0)
# A label class whose summed probability sum_t y^t_k is below MIN_LABEL_SUM (ace_fast: times its
# count, so r_k = N_k / sum_t y^t_k would pass 1 / MIN_LABEL_SUM) may have underflowed, or been
# clamped, in some frames: it is redone in log space from the logits, so it stays exact.
MIN_LABEL_SUM = 1e-20

# The kernels' per-sample outputs: the columns of ``sample_out``.
LOSS, KL, STATUS = 0, 1, 2
# STATUS is 0 or more (label classes redone in log space), or one of these, which leave the
# sample out of the loss and the gradient:
BAD_TARGET = -1.0  # a class index outside [0, C), or a length beyond the label's padding
TOO_LONG = -2.0  # more label symbols than frames (N_blank < 0)
