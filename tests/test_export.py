"""scripts/export.py: ONNX and TorchScript give PyTorch's readings for ACE and CTC models."""

import importlib.util
from pathlib import Path

import pytest
import torch

from ace_str.build.models import load_model
from ace_str.engine.trainer import Trainer
from ace_str.scoring.evaluator import decode_logits

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("export", REPO / "scripts/export.py")
export = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export)


@pytest.fixture
def onnx_installed() -> None:
    """Only the ONNX round trips need the ``export`` extra (installed by ``.[dev]``); the
    refusal of 2D models is checked without it."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("experiment", ["crnn_ace", "crnn_ctc"])
def test_round_trip(tiny_config, tmp_path, experiment, onnx_installed):
    Trainer(tiny_config("trainer.max_steps=1", experiment=experiment), tmp_path / "run").fit()
    checkpoint = tmp_path / "run" / "last.ckpt"
    model, charset, cfg = load_model(checkpoint, torch.device("cpu"))
    shape = (cfg.data.channels, cfg.data.height, cfg.data.width)
    images = export.sample_batch(None, None, 4, shape)
    report = export.round_trip(model, charset, images, tmp_path / "out")
    assert set(report) == {"onnx", "torchscript"}
    for entry in report.values():
        assert entry["same_texts"] and entry["max_abs_logit_diff"] < 1e-4
    # the ONNX graph takes any batch size
    other = export.sample_batch(None, None, 7, shape) * 0.5
    logits = export.onnx_logits(tmp_path / "out" / "model.onnx", other)
    with torch.inference_mode():
        expected = model(other)
    assert logits.shape == expected.shape
    assert decode_logits(model, logits, charset)[0] == decode_logits(model, expected, charset)[0]


def test_cli_reports_each_format(tiny_config, tmp_path, capsys, onnx_installed):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    export.main(["--checkpoint", str(tmp_path / "run" / "last.ckpt"), "--batch", "3"])
    printed = capsys.readouterr().out
    assert (
        "onnx:" in printed
        and "torchscript:" in printed
        and "same texts as PyTorch: True" in printed
    )
    assert (tmp_path / "run" / "export" / "model.onnx").is_file()


def test_2d_models_are_refused(tiny_config):
    fake = torch.nn.Module()
    fake.head = torch.nn.Identity()
    fake.forward = lambda images: torch.zeros(len(images), 2, 3, 5)
    with pytest.raises(ValueError, match=r"1D models"):
        export.check_exportable(fake, torch.zeros(1, 1, 32, 100))
