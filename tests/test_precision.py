"""trainer.amp: which dtype autocast computes in, per device and CPU, and a bfloat16 CPU run."""

from __future__ import annotations

import logging

import pytest
import torch

from ace_str.engine import precision
from ace_str.engine.precision import amp_dtype
from ace_str.engine.trainer import Trainer

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_amp_modes_on_a_cpu(monkeypatch, native):
    """off and auto keep float32 on a CPU; on takes bfloat16 on any CPU; native only where the
    CPU computes bfloat16 itself (where oneDNN emulates it, it is slower than float32)."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert amp_dtype("off", CPU) is None and amp_dtype(False, CPU) is None
    assert amp_dtype("auto", CPU) is None
    assert amp_dtype("on", CPU) == amp_dtype(True, CPU) == torch.bfloat16
    assert amp_dtype("native", CPU) == (torch.bfloat16 if native else None)
    with pytest.raises(ValueError, match="trainer.amp"):
        amp_dtype("bf16", CPU)


def test_a_bfloat16_cpu_run_trains_float32_weights(tmp_path, tiny_config, caplog):
    """trainer.amp=on on the CPU: the steps run under bfloat16 autocast (said in the log), the
    losses stay finite and the weights and checkpoint stay float32."""
    caplog.set_level(logging.INFO, logger="ace_str.engine.precision")
    trainer = Trainer(tiny_config("trainer.amp=on", "trainer.max_steps=3"), tmp_path)
    assert trainer.precision.dtype == torch.bfloat16
    assert "bfloat16 autocast on cpu" in caplog.text
    trainer.fit()
    assert trainer.step == 3 and trainer.nonfinite_total == 0
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)["model"]
    assert all(v.dtype != torch.bfloat16 for v in state.values())
