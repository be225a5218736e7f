"""Word accuracy by how tall a crop's text stands on a 96x100 canvas fitted by aspect ratio
(or, with ``--by aspect``, by the crop's own width over height).

A 2D canvas model places each crop as large as it fits (``data.keep_ratio``), so a short word's
letters fill all 96 rows while a long word's stand 25 rows high; this bins evaluate.py's
per-set predictions by that fitted height, the one the crop would have without a cap
(``max_text_height``), and prints one column per predictions file. Real short words reading
least of all was the reason for the cap (REPRODUCING.md, Table 2).

    python scripts/canvas_heights.py --data ../shared/data/benchmarks/IIIT5K \\
        --predictions <run>/eval_best_benchmarks_standard_sets/IIIT5k_3000_predictions.tsv \\
        <run>/eval_best_benchmarks_standard_cap40_sets/IIIT5k_3000_predictions.tsv \\
        --names uncapped cap40

``--by aspect`` bins by width / height instead (<1: taller than wide, 1-2, 2-3, >=3): short words
and tall crops are where the 2D hour loses IC15 to the 1D recipe (REPRODUCING.md, Table 2).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ace_str.data.normalize2d import canvas_scale

EDGES = (24, 32, 48, 64)  # fitted text heights (pixels) that start each bin after the first
ASPECT_EDGES = (1, 2, 3)  # crop width / height that start each bin after the first


def height_bin(height: float, edges: Sequence[int] = EDGES) -> str:
    """'<24', '24-32', ..., '>=64' for a fitted height in pixels (any edges: aspect bins too)."""
    low = None
    for edge in edges:
        if height < edge:
            return f"<{edge}" if low is None else f"{low}-{edge}"
        low = edge
    return f">={low}"


def fitted_height(path: Path, canvas: tuple[int, int] = (96, 100)) -> float:
    """The crop's height on the canvas when fitted keeping its aspect ratio."""
    with Image.open(path) as image:
        width, height = image.size
    return height * canvas_scale(width, height, canvas, None, 1.0)


def aspect(path: Path) -> float:
    """The crop's width over its height."""
    with Image.open(path) as image:
        width, height = image.size
    return width / height


def read_predictions(path: Path) -> dict[str, bool]:
    """path_or_index -> correct, from evaluate.py's ``<set>_predictions.tsv``."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {row["path_or_index"]: row["correct"] == "1" for row in rows}


def table(data: Path, predictions: Sequence[Path], names: Sequence[str], by: str = "height") -> str:
    runs = [read_predictions(p) for p in predictions]
    keys = list(runs[0])
    if any(set(run) != set(keys) for run in runs[1:]):
        raise ValueError("the predictions files list different images: one set per call")
    measure, edges, title = {
        "height": (fitted_height, EDGES, "fitted text height (px)"),
        "aspect": (aspect, ASPECT_EDGES, "crop width / height"),
    }[by]
    order = [height_bin(0, edges)] + [height_bin(edge, edges) for edge in edges]
    counts = dict.fromkeys(order, 0)
    correct = {name: dict.fromkeys(order, 0) for name in names}
    for key in keys:
        image = data / key
        if not image.is_file():
            raise FileNotFoundError(f"{image}: listed in {predictions[0]} but not under --data")
        b = height_bin(measure(image), edges)
        counts[b] += 1
        for name, run in zip(names, runs, strict=True):
            correct[name][b] += run[key]
    lines = [
        f"| {title} | samples | " + " | ".join(f"{n} (%)" for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for b in order:
        if counts[b]:
            accs = " | ".join(f"{100 * correct[n][b] / counts[b]:.2f}" for n in names)
            lines.append(f"| {b} | {counts[b]} | {accs} |")
    total = " | ".join(f"{100 * sum(correct[n].values()) / len(keys):.2f}" for n in names)
    lines.append(f"| all | {len(keys)} | {total} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the set's folder (images/)")
    parser.add_argument("--predictions", type=Path, nargs="+", required=True)
    parser.add_argument("--names", nargs="+", help="a column name per predictions file")
    parser.add_argument(
        "--by", choices=("height", "aspect"), default="height", help="what the rows bin"
    )
    args = parser.parse_args(argv)
    names = args.names or [p.parent.parent.name for p in args.predictions]
    if len(names) != len(args.predictions):
        parser.error("--names needs one name per predictions file")
    print(table(args.data, args.predictions, names, args.by))


if __name__ == "__main__":
    main()
