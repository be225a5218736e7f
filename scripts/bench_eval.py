"""Evaluation throughput against the model alone, measured in one run on the same images.

model-only: the same model and batch size on tensors already in memory (decoding of the logits
included, image decoding excluded); full: the evaluate.py path (DataLoader workers decoding
images, inference, metrics). The ratio full / model-only says how well decoding is hidden.

    python scripts/bench_eval.py --checkpoint PATH [--root ../shared/data/benchmarks]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

from ace_str.build.models import load_model, set_threads
from ace_str.build.transform import build_transform
from ace_str.data.folder import open_dataset
from ace_str.evaluation.reader import keyed_loader
from ace_str.scoring.evaluator import evaluate_batches, read_batch

SETS = ("IIIT5K", "SVT", "IC15")


def model_only(model, charset, images: torch.Tensor, batch_size: int) -> float:
    start = time.perf_counter()
    for first in range(0, len(images), batch_size):
        read_batch(model, images[first : first + batch_size], charset)
    return time.perf_counter() - start


def full_path(model, charset, dataset, batch_size: int, workers: int, prefetch: int) -> float:
    loader = keyed_loader(dataset, charset, batch_size, workers, prefetch)
    start = time.perf_counter()
    evaluate_batches(model, loader, charset, torch.device("cpu"))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--root", default="../shared/data/benchmarks")
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--threads", default="auto", help="torch threads, or auto (as evaluate)")
    parser.add_argument("--limit", type=int, default=0, help="images per set (0: all)")
    parser.add_argument("--no-channels-last", action="store_true")
    args = parser.parse_args(argv)

    set_threads(args.threads, args.workers)
    model, charset, train_cfg = load_model(args.checkpoint, torch.device("cpu"))
    if not args.no_channels_last:
        model = model.to(memory_format=torch.channels_last)
    transform = build_transform(train_cfg)
    totals = {"images": 0, "model": 0.0, "full": 0.0}
    for name in args.sets:
        dataset = open_dataset(
            Path(args.root) / name,
            charset,
            max_label_length=1000,
            transform=transform,
            filter_labels=False,
        )
        if args.limit:
            dataset = Subset(dataset, range(min(args.limit, len(dataset))))
        images = torch.stack([s[0] for s in (dataset[i] for i in range(len(dataset))) if s])
        read_batch(model, images[: args.batch_size], charset)  # warm-up
        # interleaved per set, so load from other processes hits both figures alike
        model_s = model_only(model, charset, images, args.batch_size)
        full_s = full_path(model, charset, dataset, args.batch_size, args.workers, args.prefetch)
        n = len(images)
        print(
            f"{name}: {n} images, model-only {n / model_s:.0f} images/s, "
            f"full {n / full_s:.0f} images/s, ratio {model_s / full_s:.2f}"
        )
        totals["images"] += n
        totals["model"] += model_s
        totals["full"] += full_s
    n = totals["images"]
    print(
        f"overall: {n} images, model-only {n / totals['model']:.0f} images/s, "
        f"full {n / totals['full']:.0f} images/s, ratio {totals['model'] / totals['full']:.2f} "
        f"(batch {args.batch_size}, workers {args.workers}, prefetch {args.prefetch}, "
        f"torch threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
