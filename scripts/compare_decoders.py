"""Score one checkpoint on its own held-out synthetic validation set with every decoder its
head offers, side by side: which reading gets most out of a model (early in training, ACE's
frames hold letters spread over neighbours that argmax reads as blanks).

    python scripts/compare_decoders.py --checkpoint outputs/crnn_ace_quick/<run>/best.ckpt

Prints a Markdown table: decoder, word accuracy, 1-NED, samples. The set is the one the run
validated on (``data.val_synth_size`` images, ``data.val_synth_seed``), rendered once and read
by each decoder from the same logits. ``--set KEY=VALUE ...`` changes that set's config first,
e.g. one kind of geometry at a time on a 2D checkpoint:

    python scripts/compare_decoders.py --checkpoint <run>/best.ckpt --decoders mass \
        --set data.synth.render.curve_prob=0 data.synth.render.perspective_prob=0
"""

from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf

from ace_str.build.data import build_val_datasets
from ace_str.build.loaders import eval_loader
from ace_str.build.models import load_model
from ace_str.scoring.evaluator import decode_logits
from ace_str.scoring.metrics import MetricTotals


def compare(
    checkpoint: str,
    decoders: list[str] | None,
    size: int | None,
    overrides: list[str] | None = None,
) -> list[dict]:
    """One row per decoder: its summary metrics on the checkpoint's synthetic validation,
    rendered with the run's config and ``overrides`` (``key=value``, keys the config has)."""
    model, charset, cfg = load_model(checkpoint, torch.device("cpu"))
    if overrides:
        OmegaConf.set_struct(cfg, True)  # a misspelt key is an error, not a silent new key
        cfg.merge_with_dotlist(list(overrides))
    if size:
        cfg.data.val_synth_size = size
    dataset = build_val_datasets(cfg, charset).get("synth_val")
    if dataset is None:
        raise SystemExit(f"{checkpoint}: its config validates on no synthetic set")
    names = decoders or list(model.head.decoders)
    if not names:
        raise SystemExit(f"{type(model.head).__name__} has one decoding; nothing to compare")
    totals = {name: MetricTotals() for name in names}
    loader = eval_loader(dataset, charset, cfg.data.batch_size, 1)
    with torch.inference_mode():
        for batch in loader:
            logits = model(batch.images)
            for name in names:
                model.head.use_decoder(name)
                texts, confidences = decode_logits(model, logits, charset)
                totals[name].update(texts, batch.texts, confidences)
    return [{"decoder": name, **totals[name].summary()} for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--decoders", nargs="*", help="default: every decoder of the head")
    parser.add_argument("--size", type=int, help="validation images (default: the run's)")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="changes to the run's config before the set is rendered",
    )
    args = parser.parse_args()
    rows = compare(args.checkpoint, args.decoders, args.size, args.set)
    print("| decoder | word acc (%) | 1-NED | samples |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['decoder']} | {100 * row['word_accuracy']:.2f} | "
            f"{row['one_minus_ned']:.3f} | {row['samples']} |"
        )


if __name__ == "__main__":
    main()
