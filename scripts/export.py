"""Export a 1D recognizer (ACE or CTC head) to ONNX and TorchScript, and check the round trip.

The exported graph is backbone + classifier: images (B, C, H, W) -> logits (B, T, C). Decoding
stays in Python (``model.head.decode``), so every head decodes exported logits as it does its
own. The check reads one batch with PyTorch, TorchScript and onnxruntime (CPU) and requires the
same decoded texts. Needs the ``export`` extra: ``pip install -e ".[export]"``.

    python scripts/export.py --checkpoint PATH [--out DIR] [--images DIR]
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ace_str.build.models import load_model
from ace_str.build.transform import build_transform
from ace_str.data.charset import Charset
from ace_str.scoring.evaluator import decode_logits

log = logging.getLogger(__name__)


class LogitsModel(nn.Module):
    """The recognizer without targets: a plain images -> logits graph to trace."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


def check_exportable(model: nn.Module, images: Tensor) -> None:
    with torch.inference_mode():
        logits = model(images)
    if logits.dim() != 3:
        raise ValueError(
            f"export supports 1D models with (B, T, C) logits; {type(model.head).__name__} "
            f"gives {tuple(logits.shape)}"
        )


def export_torchscript(model: nn.Module, images: Tensor, path: Path) -> Path:
    # TorchScript is deprecated in favour of torch.export, yet it is still what C++ and mobile
    # runtimes load; the deprecation notice is not news to the caller
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(LogitsModel(model).eval(), images, check_trace=False)
    traced.save(str(path))
    return path


def export_onnx(model: nn.Module, images: Tensor, path: Path, opset: int = 17) -> Path:
    with torch.no_grad():
        torch.onnx.export(
            LogitsModel(model).eval(),
            (images,),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,  # the TorchScript-based exporter: no onnxscript dependency
        )
    return path


def onnx_logits(path: Path, images: Tensor) -> Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    return torch.from_numpy(logits)


def round_trip(
    model: nn.Module, charset: Charset, images: Tensor, out: Path, formats=("onnx", "torchscript")
) -> dict[str, dict[str, float | bool | str]]:
    """Export to ``out`` and compare each format's decoded texts with PyTorch's on ``images``."""
    model = model.eval().cpu()
    check_exportable(model, images)
    out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        reference = model(images)
    texts, _ = decode_logits(model, reference, charset)
    report: dict[str, dict[str, float | bool | str]] = {}
    for fmt in formats:
        if fmt == "onnx":
            path = export_onnx(model, images, out / "model.onnx")
            logits = onnx_logits(path, images)
        elif fmt == "torchscript":
            path = export_torchscript(model, images, out / "model.pt")
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                logits = torch.jit.load(str(path))(images)
        else:
            raise ValueError(f"unknown export format {fmt!r}; choose onnx or torchscript")
        exported, _ = decode_logits(model, logits, charset)
        report[fmt] = {
            "path": str(path),
            "same_texts": exported == texts,
            "max_abs_logit_diff": float((logits - reference).abs().max()),
        }
    return report


def sample_batch(transform, images_dir: str | None, size: int, shape: tuple[int, ...]) -> Tensor:
    """Real images when given (the check is more telling on them), else seeded noise."""
    if images_dir:
        from ace_str.data.lmdb import decode_image
        from ace_str.evaluation.reader import list_images

        paths = list_images(images_dir)[:size]
        return torch.stack([transform(decode_image(p)) for p in paths])
    return torch.rand((size, *shape), generator=torch.Generator().manual_seed(0)) * 2 - 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", default=None, help="default: <checkpoint folder>/export")
    parser.add_argument("--images", default=None, help="folder of images for the check")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--formats", nargs="+", default=["onnx", "torchscript"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    model, charset, cfg = load_model(args.checkpoint, torch.device("cpu"))
    transform = build_transform(cfg)
    shape = (cfg.data.channels, cfg.data.height, cfg.data.width)
    images = sample_batch(transform, args.images, args.batch, shape)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "export"
    report = round_trip(model, charset, images, out, args.formats)
    for fmt, entry in report.items():
        print(
            f"{fmt}: {entry['path']} same texts as PyTorch: {entry['same_texts']} "
            f"(max |logit diff| {entry['max_abs_logit_diff']:.2e})"
        )
    if not all(entry["same_texts"] for entry in report.values()):
        raise SystemExit("exported model reads differently from PyTorch")


if __name__ == "__main__":
    main()
