"""Why a checkpoint's readings come out short (ACE's most frequent error on real crops).

For each checkpoint, on a labelled folder or LMDB, standard protocol (lower case, 0-9a-z):

- readings by kind: correct, shorter than the truth, longer, same length, anagram (the same
  letters in another order: the one error ACE's order-free loss cannot see);
- truth letters deleted in one minimal alignment, by position (words of three or more letters:
  first, middle, last);
- for ACE checkpoints, where each missing letter's probability went: its class's mass summed over
  the frames, less what the letters that were read took, is a near miss (0.3 or more, under the
  mass decoder's 0.5), confused (the frames' total letter mass, sum of 1 - y_blank, holds the
  word's length: the letter went to other classes) or absorbed by the blank;
- for ACE checkpoints, word accuracy of the mass decoder with other rounding thresholds and with
  the blank's logit lowered by b, two decoding-side remedies for short readings.

    python scripts/short_readings.py --data ../shared/data/benchmarks/IIIT5K \\
        --checkpoints outputs/ace/best.ckpt outputs/ctc/best.ckpt
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Sequence

import torch
from rapidfuzz.distance import Levenshtein
from torch import Tensor

from ace_str.build.loaders import eval_loader
from ace_str.build.models import load_model
from ace_str.build.transform import inference_transform
from ace_str.data.charset import Charset
from ace_str.data.folder import open_dataset
from ace_str.models.decoding import BLANK, ace_mass_decode, flatten_2d
from ace_str.models.heads.ace import ACEHead
from ace_str.scoring.evaluator import evaluate_batches
from ace_str.scoring.metrics import normalize_text

KINDS = ("correct", "shorter", "longer", "same length", "anagram")


def reading_kind(truth: str, reading: str) -> str:
    if reading == truth:
        return "correct"
    if sorted(reading) == sorted(truth):
        return "anagram"
    if len(reading) != len(truth):
        return "shorter" if len(reading) < len(truth) else "longer"
    return "same length"


def deleted_positions(truth: str, reading: str) -> Counter:
    """Truth letters a minimal alignment deletes, as first / middle / last of the word."""
    positions: Counter = Counter()
    for op in Levenshtein.editops(truth, reading):
        if op.tag == "delete":
            i = op.src_pos
            positions["first" if i == 0 else "last" if i == len(truth) - 1 else "middle"] += 1
    return positions


def letter_classes(charset: Charset) -> dict[str, list[int]]:
    """Standard-protocol letter -> the classes that read as it ('a' and 'A')."""
    classes: dict[str, list[int]] = defaultdict(list)
    for k in range(1, charset.num_classes):
        letter = normalize_text(charset.decode([k]))
        if len(letter) == 1:
            classes[letter].append(k)
    return classes


def missing_mass(probs: Tensor, truth: str, reading: str, classes: dict) -> Counter:
    """Where the letters a short reading lacks went ("near miss", "confused", "blank"), one
    count per missing letter.

    ``probs``: (T, C) one sample's frame probabilities."""
    where: Counter = Counter()
    letter_mass = float((1.0 - probs[:, BLANK]).sum())
    wanted = Counter(truth)
    for letter, missing in (wanted - Counter(reading)).items():
        ids = classes.get(letter, [])
        mass = float(probs[:, ids].sum()) if ids else 0.0
        left = mass - (wanted[letter] - missing)  # mass the unread instances have between them
        for n in range(missing):
            if left - n >= 0.3:
                where["near miss"] += 1
            elif len(truth) - letter_mass < 0.5:
                where["confused"] += 1
            else:
                where["blank"] += 1
    return where


def analyse(
    checkpoint: str,
    data: str,
    thresholds: Sequence[float],
    blank_shifts: Sequence[float],
    batch_size: int = 128,
    max_text_height: int | None = None,
) -> dict:
    model, charset, cfg = load_model(checkpoint, torch.device("cpu"))
    transform = inference_transform(cfg, max_text_height)
    dataset = open_dataset(data, charset, transform=transform, filter_labels=False)
    is_ace = isinstance(model.head, ACEHead)
    order = getattr(model.head, "read_order", "column")
    kept: list[tuple[list[str], Tensor]] = []

    def keep(batch, logits, texts, confidences) -> None:
        if is_ace:
            kept.append((list(batch.texts), flatten_2d(logits, order).detach().float()))

    loader = eval_loader(dataset, charset, batch_size, 0)
    result = evaluate_batches(model, loader, charset, torch.device("cpu"), on_batch=keep)
    kinds: Counter = Counter()
    deleted: Counter = Counter()
    for reading in result.readings:
        truth, text = normalize_text(reading.truth), normalize_text(reading.prediction)
        if truth:
            kinds[reading_kind(truth, text)] += 1
            if len(truth) >= 3:
                deleted.update(deleted_positions(truth, text))
    out = {"kinds": kinds, "deleted": deleted, "samples": sum(kinds.values()), "ace": is_ace}
    if is_ace:
        out.update(_ace_measures(kept, charset, thresholds, blank_shifts, order))
    return out


def _ace_measures(kept, charset, thresholds, blank_shifts, order) -> dict:
    classes = letter_classes(charset)
    where: Counter = Counter()
    by_threshold = {t: 0 for t in thresholds}
    by_shift = {b: 0 for b in blank_shifts}
    for texts, logits in kept:
        truths = [normalize_text(t) for t in texts]
        readings = _read(ace_mass_decode(logits, order)[0], charset)
        probs = logits.softmax(dim=-1)
        for b, (truth, text) in enumerate(zip(truths, readings, strict=True)):
            if truth and len(text) < len(truth):
                where.update(missing_mass(probs[b], truth, text, classes))
        for t in thresholds:
            sequences = ace_mass_decode(logits, order, threshold=t)[0]
            by_threshold[t] += _correct(truths, _read(sequences, charset))
        for shift in blank_shifts:
            lowered = logits.clone()
            lowered[..., BLANK] -= shift
            by_shift[shift] += _correct(truths, _read(ace_mass_decode(lowered, order)[0], charset))
    return {"where": where, "by_threshold": by_threshold, "by_shift": by_shift}


def _read(sequences: list[list[int]], charset: Charset) -> list[str]:
    return [normalize_text(charset.decode(s)) for s in sequences]


def _correct(truths: list[str], readings: list[str]) -> int:
    return sum(bool(t) and t == r for t, r in zip(truths, readings, strict=True))


def report(results: dict[str, dict]) -> str:
    lines = [
        "| checkpoint | samples | " + " | ".join(f"{k} (%)" for k in KINDS) + " | deleted "
        "first / middle / last |",
        "|---|---:|" + "---:|" * len(KINDS) + "---|",
    ]
    for name, r in results.items():
        share = 100.0 / max(r["samples"], 1)
        cells = " | ".join(f"{share * r['kinds'][k]:.2f}" for k in KINDS)
        d = r["deleted"]
        lines.append(
            f"| {name} | {r['samples']} | {cells} | {d['first']} / {d['middle']} / {d['last']} |"
        )
    for name, r in results.items():
        if not r["ace"]:
            continue
        share = 100.0 / max(r["samples"], 1)
        w = r["where"]
        lines += [
            "",
            f"{name}: letters missing from short readings: near miss (mass >= 0.3) "
            f"{w['near miss']}, confused (went to other letters) {w['confused']}, "
            f"absorbed by the blank {w['blank']}",
            "",
            "| mass decoder | word acc (%) |",
            "|---|---:|",
        ]
        lines += [f"| threshold {t:g} | {share * n:.2f} |" for t, n in r["by_threshold"].items()]
        lines += [f"| blank logit - {b:g} | {share * n:.2f} |" for b, n in r["by_shift"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled folder or LMDB")
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.3, 0.4, 0.5])
    parser.add_argument("--blank-shifts", nargs="+", type=float, default=[0.5, 1.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-text-height",
        type=int,
        default=None,
        help="2D checkpoints: cap the text's height on the canvas (default: the run's own)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {
        c: analyse(
            c, args.data, args.thresholds, args.blank_shifts, max_text_height=args.max_text_height
        )
        for c in args.checkpoints
    }
    print(report(results))


if __name__ == "__main__":
    main()
