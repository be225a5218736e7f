"""Benchmark tables as Markdown, CSV and JSON, with the weighted and plain means named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

COLUMNS = ("word_accuracy", "one_minus_ned")
HEADERS = {"word_accuracy": "word acc (%)", "one_minus_ned": "1-NED (%)"}


def add_means(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Append the sample-weighted mean (over all images) and the plain mean (over sets)."""
    if not rows:
        return rows
    total = sum(r["samples"] for r in rows.values())
    weighted = {"samples": total}
    plain = {"samples": total}
    for col in COLUMNS:
        weighted[col] = sum(r[col] * r["samples"] for r in rows.values()) / max(total, 1)
        plain[col] = sum(r[col] for r in rows.values()) / len(rows)
    return {**rows, "weighted mean": weighted, "plain mean": plain}


def markdown_table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| set | samples | " + " | ".join(HEADERS[c] for c in COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for name, row in rows.items():
        cells = " | ".join(f"{100 * row[c]:.2f}" for c in COLUMNS)
        lines.append(f"| {name} | {int(row['samples'])} | {cells} |")
    return "\n".join(lines)


def write_tables(rows: dict[str, dict[str, float]], stem: Path) -> list[Path]:
    """``stem``.md, .csv and .json side by side."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path, json_path = (stem.with_suffix(s) for s in (".md", ".csv", ".json"))
    md.write_text(markdown_table(rows) + "\n", encoding="utf-8")
    fields = sorted({k for row in rows.values() for k in row})
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["set", *fields])
        for name, row in rows.items():
            writer.writerow([name, *(row.get(f, "") for f in fields)])
    json_path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return [md, csv_path, json_path]
