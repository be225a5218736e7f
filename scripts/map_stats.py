"""Does a model place characters in cells, or spread the label's counts over every cell?

Eq. 8 sees the prediction only through its mean over the T cells (ybar_k = sum_t y^t_k / T), so
it is flat in every direction that keeps the mean: a map that puts 1/T of each label character
in every cell scores as well as one that puts each character in one cell, yet its argmax reads
nothing. This prints, over the first ``--samples`` validation images of a checkpoint's own
config, how concentrated the non-blank probability is: the largest character probability in a
cell (1/T ~ 0.0064 on a 12x13 map when fully spread, near 1 when localised), the share of the
characters' mass held by cells whose argmax is a character, the count of such cells per image
against the label length, how many of those cells predict a character of the label, and the
share of the characters' mass in sure cells (a character at more than 0.9): a letter one frame
holds at 0.99 sums to its count whatever a real crop does to its logits by a little, one that
two frames hold at 0.5 each does not. 1D checkpoints (CRNN frames) read the same way.

    python scripts/map_stats.py --checkpoint outputs/resnet2d_ace_quick/<run>/last.ckpt
    python scripts/map_stats.py --checkpoint <run>/best.ckpt --data ../shared/data/benchmarks/IIIT5K

``--data`` reads a labelled folder or LMDB instead of its validation set (real crops against the
synthetic ones it validated on), through the transform evaluate.py gives real crops (a 2D
canvas: the run's ``data.inference_max_text_height``, or ``--max-text-height``).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ace_str.build.data import build_val_datasets
from ace_str.build.models import load_model
from ace_str.build.transform import inference_transform
from ace_str.data.folder import open_dataset

SURE = 0.9  # a cell holding a character above this is saturated: a logit shift barely moves it


def map_stats(probs: torch.Tensor, label: str, symbols: str) -> dict[str, float]:
    """Statistics of one (cells, classes) probability map (class 0 the blank)."""
    chars = probs[:, 1:]
    argmax = probs.argmax(-1)
    char_cells = argmax != 0
    mass = chars.sum()
    in_label = [symbols[int(k) - 1] in label for k in argmax[char_cells]]
    return {
        "max_char_prob": float(chars.max()),
        "mass_in_char_cells": float(chars[char_cells].sum() / mass) if mass > 0 else 0.0,
        "mass_in_sure_cells": float(chars[chars > SURE].sum() / mass) if mass > 0 else 0.0,
        "char_cells": float(char_cells.sum()),
        "label_length": float(len(label)),
        "char_cells_in_label": float(sum(in_label)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by train.py")
    parser.add_argument("--samples", type=int, default=100, help="validation images to read")
    parser.add_argument("--data", help="a labelled folder or LMDB instead of the validation set")
    parser.add_argument(
        "--max-text-height", type=int, help="with --data, a 2D canvas: cap the text's height"
    )
    args = parser.parse_args(argv)
    model, charset, cfg = load_model(args.checkpoint, torch.device("cpu"))
    if args.data:
        name = args.data
        dataset = open_dataset(
            args.data,
            charset,
            max_label_length=cfg.data.max_label_length,
            transform=inference_transform(cfg, args.max_text_height),
            filter_labels=False,
        )
    else:
        datasets = build_val_datasets(cfg, charset)
        if not datasets:
            raise SystemExit(f"{args.checkpoint}: its config names no validation set")
        name, dataset = next(iter(datasets.items()))
    symbols = "".join(charset.symbols)
    rows = []
    for index in range(min(args.samples, len(dataset))):
        item = dataset[index]
        if item is None:  # a skipped (corrupt) record
            continue
        image, label = item
        # as the model is trained on them: case-folded, symbols outside its charset dropped
        # (IC15's "JOINT" holds no letter of a lower-case model's map otherwise)
        label = charset.normalize(label) or ""
        with torch.inference_mode():
            logits = model(image.unsqueeze(0))
        probs = logits.reshape(-1, logits.shape[-1]).softmax(-1)
        rows.append(map_stats(probs, label, symbols))
    if not rows:
        raise SystemExit(f"{args.checkpoint}: no readable image among the first {args.samples}")
    cells = probs.shape[0]
    print(f"{args.checkpoint}: {len(rows)} images of {name}, {cells} cells (1/T = {1 / cells:.4f})")
    for key in rows[0]:
        values = [row[key] for row in rows]
        mean, median = statistics.mean(values), statistics.median(values)
        print(f"  {key:20s} mean {mean:.4f}  median {median:.4f}")


if __name__ == "__main__":
    main()
