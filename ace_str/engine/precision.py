"""Mixed precision (``trainer.amp``): the dtype autocast computes in, and the loss scaler that
float16 alone needs (bfloat16 has float32's range)."""

from __future__ import annotations

import contextlib

import torch


def amp_dtype(mode: str | bool, device: torch.device) -> torch.dtype | None:
    """``trainer.amp``: None (float32) when off, or when ``auto`` on a CPU; else bfloat16
    where the device has it, float16 on older GPUs."""
    if mode is False or mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else torch.bfloat16


class MixedPrecision:
    """``dtype`` (None: float32) and the ``scaler``, a no-op unless the dtype is float16."""

    def __init__(self, mode: str | bool, device: torch.device) -> None:
        self.device = device
        self.dtype = amp_dtype(mode, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)
