"""Benchmark tables as Markdown, CSV and JSON, with the weighted and plain means named; per-set
prediction TSVs and worst-error picks."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from ace_str.scoring.evaluator import Reading
from ace_str.scoring.metrics import normalize_text, one_minus_ned

COLUMNS = (
    "word_accuracy",
    "one_minus_ned",
    "cer",
    "correct_rate",
    "accurate_rate",
    "count_precision",
    "count_recall",
    "mean_confidence",
)
HEADERS = {
    "word_accuracy": "word acc (%)",
    "one_minus_ned": "1-NED (%)",
    "cer": "CER (%)",
    "correct_rate": "CR (%)",
    "accurate_rate": "AR (%)",
    "count_precision": "count P (%)",
    "count_recall": "count R (%)",
    "mean_confidence": "mean conf (%)",
}
LEXICON_PREFIX = "lexicon_"
LEXICON_SUFFIX = "_accuracy"
MEANS_NOTE = (
    "weighted mean: over all images (each set weighted by its size); "
    "plain mean: the average of the per-set figures (each set counts once). "
    "Lexicon columns are averaged over the sets that have that lexicon."
)


def lexicon_column(name: str) -> str:
    return f"{LEXICON_PREFIX}{name}{LEXICON_SUFFIX}"


def lexicon_columns(rows: dict[str, dict[str, float]]) -> list[str]:
    """Lexicon accuracy keys present in any row, in first-seen order."""
    keys = (k for r in rows.values() for k in r)
    found = (k for k in keys if k.startswith(LEXICON_PREFIX) and k.endswith(LEXICON_SUFFIX))
    return list(dict.fromkeys(found))


def header(column: str) -> str:
    if column in HEADERS:
        return HEADERS[column]
    return f"lex-{column[len(LEXICON_PREFIX) : -len(LEXICON_SUFFIX)]} acc (%)"


def add_means(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Append the sample-weighted mean (over all images) and the plain mean (over sets)."""
    if not rows:
        return rows
    total = sum(r["samples"] for r in rows.values())
    weighted = {"samples": total}
    plain = {"samples": total}
    for col in (*COLUMNS, *lexicon_columns(rows)):
        having = [r for r in rows.values() if col in r]
        count = sum(r["samples"] for r in having)
        weighted[col] = sum(r[col] * r["samples"] for r in having) / max(count, 1)
        plain[col] = sum(r[col] for r in having) / len(having)
    return {**rows, "weighted mean": weighted, "plain mean": plain}


def markdown_table(rows: dict[str, dict[str, float]]) -> str:
    columns = [*COLUMNS, *lexicon_columns(rows)]
    lines = [
        "| set | samples | " + " | ".join(header(c) for c in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for name, row in rows.items():
        cells = " | ".join(f"{100 * row[c]:.2f}" if c in row else "–" for c in columns)
        lines.append(f"| {name} | {int(row['samples'])} | {cells} |")
    return "\n".join(lines)


def write_tables(rows: dict[str, dict[str, float]], stem: Path) -> list[Path]:
    """``stem``.md, .csv and .json side by side."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path, json_path = (stem.with_suffix(s) for s in (".md", ".csv", ".json"))
    md.write_text(markdown_table(rows) + f"\n\n{MEANS_NOTE}\n", encoding="utf-8")
    fields = ["samples", *COLUMNS, *lexicon_columns(rows)]
    fields += sorted({k for row in rows.values() for k in row} - set(fields))
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["set", *fields])
        for name, row in rows.items():
            writer.writerow([name, *(row.get(f, "") for f in fields)])
    json_path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return [md, csv_path, json_path]


def write_predictions(readings: Sequence[Reading], path: Path, protocol: str) -> Path:
    """``path_or_index<TAB>truth<TAB>prediction<TAB>confidence<TAB>correct`` with a header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("path_or_index\ttruth\tprediction\tconfidence\tcorrect\n")
        for r in readings:
            correct = normalize_text(r.prediction, protocol) == normalize_text(r.truth, protocol)
            clean = [
                s.replace("\t", " ").replace("\n", " ") for s in (r.key, r.truth, r.prediction)
            ]
            handle.write("\t".join([*clean, f"{r.confidence:.4f}", str(int(correct))]) + "\n")
    return path


def worst_errors(readings: Sequence[Reading], protocol: str, count: int = 16) -> list[int]:
    """Positions of the worst wrong readings: lowest 1-NED first, then the most confident."""
    scored = []
    for i, r in enumerate(readings):
        pred, truth = normalize_text(r.prediction, protocol), normalize_text(r.truth, protocol)
        if pred != truth:
            scored.append((one_minus_ned(pred, truth), -r.confidence, i))
    return [i for *_, i in sorted(scored)[:count]]
