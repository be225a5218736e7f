"""ACE cross-entropy on the CPU through numba kernels: ace_kernel.py up to 512 classes,
ace_kernel_wide.py beyond (``ACELoss``'s backend "kernel").

``ACELoss`` sends float32 CPU logits here. The counts N_k, Eq. 8, the KL term and the gradient of
Eq. 9 are one kernel call: at 37 classes the dispatch of a few dozen small PyTorch ops costs more
than the arithmetic, and at thousands every extra pass over the logits costs memory traffic.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from ace_str.losses.ace_constants import STATUS

log = logging.getLogger(__name__)

# Up to this many classes, ace_kernel (each sample's softmax at once, in the cache); beyond,
# ace_kernel_wide (no pass for a maximum, the label's terms from its own columns), which
# bench_complexity.py measured faster than PyTorch's label-column path there.
KERNEL_MAX_CLASSES = 512
# From this many logits the kernel uses numba's thread pool (when torch has more than one
# thread); below, the calling thread alone. At 37 classes, batch 64, T = 144 the pool measured
# ACE / softmax 1.55 against 2.55 on the calling thread (bench_complexity.py
# --parallel-threshold), so it is used throughout; the serial kernel serves one-thread runs.
# The default of ``NumbaKernels.parallel_min_elements``.
PARALLEL_MIN_ELEMENTS = 0


class NumbaKernels:
    """The numba kernels of this process and what driving them needs: numba's thread count is
    numba's own per calling thread, so each thread that calls gets it set to torch's (once per
    change), and ``parallel_min_elements`` says from how many logits numba's pool is used
    (bench_complexity.py --parallel-threshold sets it). One per process, from ``numba_kernels``.
    """

    def __init__(self, module: ModuleType) -> None:
        self.module = module  # ace_kernel; its functions are looked up at each call
        self.parallel_min_elements = PARALLEL_MIN_ELEMENTS
        self._threads = threading.local()  # the count this object last set on each thread

    def run(self, logits: Tensor, inputs: tuple, want_grad: bool) -> tuple[Tensor, tuple, tuple]:
        """One kernel call: (the gradient buffer, the per-sample state, (kept, loss sum, KL
        sum)); the wide kernel beyond KERNEL_MAX_CLASSES classes."""
        self.match_threads()
        batch, total, classes = logits.shape
        out = torch.empty_like(logits)
        if classes > KERNEL_MAX_CLASSES:
            from ace_str.losses.ace_kernel_wide import ace_wide_kernel

            sample_out = np.empty((batch, 3), np.float64)  # [Eq. 8, KL, STATUS]
            sums = ace_wide_kernel(logits.numpy(), *inputs, out.numpy(), sample_out, want_grad)
            return out, (sample_out,), sums
        state = (
            np.empty((batch, 2, classes), np.float32),  # [N_k, r_k]
            np.empty((batch, classes), np.float64),  # ln sum_t y^t_k of classes redone in log
            np.empty((batch, 2, total), np.float32),  # each frame's shift and shifted total
            np.empty((batch, 3), np.float64),  # [Eq. 8, KL, STATUS]
        )
        parallel = logits.numel() >= self.parallel_min_elements and torch.get_num_threads() > 1
        kernel = self.module.ace_kernel if parallel else self.module.ace_kernel_serial
        sums = kernel(logits.numpy(), *inputs, out.numpy(), *state, want_grad)
        return out, state, sums

    def match_threads(self) -> None:
        """numba's pool follows torch.set_num_threads, so the trainer's thread setting holds."""
        wanted = torch.get_num_threads()
        if getattr(self._threads, "count", None) != wanted:
            import numba

            numba.set_num_threads(max(1, min(wanted, numba.config.NUMBA_NUM_THREADS)))
            # The first call starts numba's pool; under its OpenMP layer that sets OpenMP's
            # thread count, which is torch's, to NUMBA_NUM_THREADS: the user's setting is put
            # back.
            if torch.get_num_threads() != wanted:
                torch.set_num_threads(wanted)
            self._threads.count = wanted


@functools.cache
def numba_kernels() -> NumbaKernels | None:
    """The process's numba kernels, imported once, on first use (each compiles, or loads from
    numba's cache, on its first call); None where numba is missing, said once in a warning."""
    try:
        from ace_str.losses import ace_kernel
    except ImportError as error:  # numba is a dependency; a broken install falls back
        log.warning("numba unavailable (%s): ACE runs on PyTorch ops", error)
        return None
    return NumbaKernels(ace_kernel)


class KernelACECrossEntropy(torch.autograd.Function):
    """The batch mean of Eq. 8 over the samples kept. The not differentiable rest comes back
    through ``side``: (samples left out, batch mean of the KL). When a sample was left out,
    ``report`` receives the per-sample status array before anything is saved, so a caller can
    raise on a bad sample; it returns how many samples were left out.

    The forward already writes the gradient (the kernel has each sample in the cache then), so
    the backward only scales it by the incoming gradient, in place, when that is not 1. One
    output, built by ``torch.scalar_tensor``: at 37 classes the Function's own overhead is a
    good part of ACE's time (bench_complexity.py).
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: Tensor,
        kernels: NumbaKernels,
        targets: np.ndarray,
        target_lengths: np.ndarray,
        frames: np.ndarray,
        report: Callable[[np.ndarray], int],
        side: list[tuple[int, float]],
    ) -> Tensor:
        logits = logits.detach().contiguous()
        inputs = (targets, target_lengths, frames)
        grad, state, (kept, loss_sum, kl_sum) = kernels.run(logits, inputs, ctx.needs_input_grad[0])
        sample_out = state[-1]
        skipped = report(sample_out[:, STATUS]) if kept < len(frames) else 0
        n = max(kept, 1)
        side.append((skipped, kl_sum / n))
        ctx.save_for_backward(logits)
        ctx.grad, ctx.inputs, ctx.kernels = grad, inputs, kernels
        return torch.scalar_tensor(loss_sum / n, dtype=torch.float32)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        grad, ctx.grad = ctx.grad, None  # handed over: autograd may keep or change it
        if grad is None:  # a second backward (retain_graph): the buffer was spent, redo it
            (logits,) = ctx.saved_tensors
            grad = ctx.kernels.run(logits, ctx.inputs, True)[0]
        scale = float(grad_loss)
        if scale != 1.0:
            grad.mul_(scale)
        return grad, None, None, None, None, None, None


def ace_terms_cpu(
    kernels: NumbaKernels,
    logits: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    input_lengths: Tensor | None,
    report: Callable[[np.ndarray], int],
) -> tuple[Tensor, Tensor, int]:
    """(mean Eq. 8, mean KL, samples left out) for logits (B, T, C) by the numba kernels.

    ``report(status)`` sees each sample's status (ace_constants: STATUS codes) first: it raises
    for samples that must not pass and returns how many were left out.
    """
    batch, total, _ = logits.shape
    if input_lengths is None:
        frames = np.full(batch, total, np.int64)
    else:
        frames = input_lengths.detach().cpu().long().clamp(max=total).numpy()
    side: list[tuple[int, float]] = []
    loss = KernelACECrossEntropy.apply(
        logits, kernels, _int64_array(targets), _int64_array(target_lengths), frames, report, side
    )
    skipped, kl = side[0]
    return loss, torch.scalar_tensor(kl, dtype=torch.float32), skipped


def _int64_array(values: Tensor) -> np.ndarray:
    """A contiguous int64 CPU array of ``values``; each step returns its input when it already
    is one, so the array shares the tensor's memory then."""
    return values.detach().cpu().long().contiguous().numpy()
