"""Pick the language model's weight and length bonus for a checkpoint on a labelled set that is
not a test set (e.g. a real training split), from one pass of the network.

    python scripts/tune_lm.py --checkpoint outputs/run/best.ckpt \\
        --data ../shared/data/real_train/IIIT5K_train --weights 0 0.25 0.5 1 --bonuses 0 1 2

Every crop is read once; its logits are kept and decoded at each (weight, bonus), weight 0
being the head's own decoding without a language model. Prints a Markdown table (standard
protocol: lower case, 0-9a-z) with the best row in bold; evaluate.py takes the pair as
``lm.weight=W lm.length_bonus=B``.
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from ace_str.build.loaders import eval_loader
from ace_str.build.models import load_model
from ace_str.build.transform import build_transform
from ace_str.data.folder import open_dataset
from ace_str.models.language_model import english_language_model
from ace_str.scoring.evaluator import decode_logits
from ace_str.scoring.metrics import MetricTotals, normalize_text


def grid(
    checkpoint: str,
    data: str,
    weights: list[float],
    bonuses: list[float],
    order: int = 5,
    limit: int | None = None,
    beam_width: int | None = None,
) -> list[dict]:
    """One row per (weight, bonus): word accuracy and 1-NED on ``data``; ``beam_width`` sets a
    CTC head's beam (its own by default)."""
    if any(w < 0 for w in weights):
        raise SystemExit(f"--weights must be at least 0, got {weights}")
    model, charset, cfg = load_model(checkpoint, torch.device("cpu"))
    model.eval()
    if beam_width is not None:
        if not hasattr(model.head, "beam_width"):
            raise SystemExit(f"--beam-width: {type(model.head).__name__} has no beam")
        model.head.beam_width = beam_width
    dataset = open_dataset(data, charset, transform=build_transform(cfg), filter_labels=False)
    lm = english_language_model(charset, order)
    pairs = [(0.0, 0.0)] if 0 in weights else []
    pairs += [(w, b) for w in weights if w > 0 for b in bonuses]
    totals = {pair: MetricTotals() for pair in pairs}
    seen = 0
    with torch.inference_mode():
        for batch in tqdm(eval_loader(dataset, charset, 64, 1), desc="batches"):
            if batch is None:
                continue
            logits = model(batch.images)
            truths = [normalize_text(t) for t in batch.texts]
            for weight, bonus in pairs:
                model.head.use_language_model(lm if weight > 0 else None, weight, bonus)
                texts, confidences = decode_logits(model, logits, charset)
                preds = [normalize_text(t) for t in texts]
                totals[weight, bonus].update(preds, truths, confidences)
            seen += len(truths)
            if limit and seen >= limit:
                break
    return [{"weight": w, "bonus": b, **totals[w, b].summary()} for w, b in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="a labelled folder or LMDB, not a test set")
    parser.add_argument("--weights", type=float, nargs="+", default=[0, 0.25, 0.5, 1.0])
    parser.add_argument("--bonuses", type=float, nargs="+", default=[0, 1, 2])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--limit", type=int, help="read at most about this many crops")
    parser.add_argument("--beam-width", type=int, help="a CTC head's beam (default: its own)")
    args = parser.parse_args()
    rows = grid(
        args.checkpoint,
        args.data,
        args.weights,
        args.bonuses,
        args.order,
        args.limit,
        args.beam_width,
    )
    best = max(rows, key=lambda r: r["word_accuracy"])
    print("| lm.weight | lm.length_bonus | word acc (%) | 1-NED | samples |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        mark = "**" if row is best else ""
        print(
            f"| {row['weight']:g} | {row['bonus']:g} | {mark}{100 * row['word_accuracy']:.2f}"
            f"{mark} | {row['one_minus_ned']:.3f} | {row['samples']} |"
        )


if __name__ == "__main__":
    main()
