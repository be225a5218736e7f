"""Mixed precision (``trainer.amp``): the dtype autocast computes in, and the loss scaler that
float16 alone needs (bfloat16 has float32's range)."""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)


MODES = ("auto", "native", "on", "off")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPU computes bfloat16 products itself; elsewhere oneDNN emulates
    them, and bfloat16 would be slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def amp_dtype(mode: str | bool, device: torch.device) -> torch.dtype | None:
    """``trainer.amp``: None (float32) when off, or when ``auto`` on a CPU; else bfloat16
    where the device has it, float16 on older GPUs. ``native`` is ``auto`` on a GPU and, on a
    CPU, bfloat16 where it has bfloat16 arithmetic (on a 2-vCPU AMD EPYC with AVX512-BF16 the 2D
    hour recipe's steps ran 1.65 times the images per second: docs/REPRODUCING.md, Table 2)."""
    if mode is True:
        mode = "on"
    if mode is False:
        mode = "off"
    if mode not in MODES:
        raise ValueError(f"trainer.amp must be one of {MODES} (or true / false), not {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "native" and not cpu_has_native_bf16():
        return None
    return torch.bfloat16


class MixedPrecision:
    """``dtype`` (None: float32) and the ``scaler``, a no-op unless the dtype is float16."""

    def __init__(self, mode: str | bool, device: torch.device) -> None:
        self.device = device
        self.dtype = amp_dtype(mode, device)
        if mode not in ("auto", "off", False):
            computes = "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")
            log.info("trainer.amp=%s: %s autocast on %s", mode, computes, device.type)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)
