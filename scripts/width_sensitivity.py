"""How a checkpoint's readings change when real crops are stretched or squeezed in width.

ACE reads a letter's count as its mass over the frames, so one might expect it to count a letter
wider or narrower than the training letters twice or not at all, where CTC's collapse of repeated
frames does not care about width. This script measures it: every crop of a labelled folder or
LMDB is resized to ``width x s`` (height kept) before the checkpoint's own transform, and word
accuracy and the shares of readings shorter and longer than the truth are printed per ``s``.

    python scripts/width_sensitivity.py --data ../shared/data/benchmarks/IIIT5K \\
        --checkpoints outputs/ace/best.ckpt outputs/ctc/best.ckpt --scales 0.6 0.8 1 1.25

Prints a Markdown table (standard protocol: lower case, 0-9a-z).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from ace_str.build.loaders import eval_loader
from ace_str.build.models import load_model
from ace_str.build.transform import build_transform
from ace_str.data.folder import open_dataset
from ace_str.scoring.evaluator import evaluate_batches
from ace_str.scoring.metrics import normalize_text


def stretched(scale: float, transform: Callable[[Image.Image], Any]) -> Callable:
    """The crop resized to ``scale`` times its width, then the model's own transform."""

    def apply(image: Image.Image) -> Any:
        width = max(1, round(image.width * scale))
        return transform(image.resize((width, image.height), Image.Resampling.BILINEAR))

    return apply


def measure(checkpoint: str, data: str, scales: list[float], batch_size: int = 128) -> list[dict]:
    """Per scale: word accuracy and the shares of readings shorter / longer than the truth (%)."""
    model, charset, cfg = load_model(checkpoint, torch.device("cpu"))
    return [_read(model, charset, cfg, data, scale, batch_size) for scale in scales]


def _read(model, charset, cfg, data: str, scale: float, batch_size: int) -> dict:
    transform = stretched(scale, build_transform(cfg))
    dataset = open_dataset(data, charset, transform=transform, filter_labels=False)
    loader = eval_loader(dataset, charset, batch_size, 0)
    result = evaluate_batches(model, loader, charset, torch.device("cpu"))
    pairs = [(normalize_text(r.truth), normalize_text(r.prediction)) for r in result.readings]
    pairs = [(truth, text) for truth, text in pairs if truth]
    if not pairs:
        raise SystemExit(f"{data}: no sample with a label left under the standard protocol")
    share = 100.0 / len(pairs)
    return {
        "accuracy": share * sum(text == truth for truth, text in pairs),
        "shorter": share * sum(len(text) < len(truth) for truth, text in pairs),
        "longer": share * sum(len(text) > len(truth) for truth, text in pairs),
        "samples": len(pairs),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled folder or LMDB")
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--scales", nargs="+", type=float, default=[0.6, 0.8, 1.0, 1.25])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| checkpoint | width x | word acc (%) | shorter (%) | longer (%) | samples |")
    print("|---|---:|---:|---:|---:|---:|")
    for checkpoint in args.checkpoints:
        rows = measure(checkpoint, args.data, args.scales)
        for scale, row in zip(args.scales, rows, strict=True):
            print(
                f"| {checkpoint} | {scale:g} | {row['accuracy']:.2f} | {row['shorter']:.2f} "
                f"| {row['longer']:.2f} | {row['samples']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
