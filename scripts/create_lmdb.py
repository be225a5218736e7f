"""Build a clovaai-layout LMDB from a labelled folder (``images/`` + ``labels.tsv``).

    python scripts/create_lmdb.py --input DIR --output OUT [--labels labels.tsv] [--no-check]

The original image bytes are stored untouched (no re-encoding) by ``ace_str.data.lmdb.LmdbWriter``
in the clovaai layout; labels are stored as written (case kept).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ace_str.data.folder import LABELS_FILE, read_labels, resolve_image
from ace_str.data.lmdb import IMAGE_ERRORS, LmdbWriter

SHOW_SKIPPED = 10


@dataclass
class CreateReport:
    """What was written and what was skipped, with ``(line, filename, reason)`` per skip."""

    output: Path
    written: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        reasons = Counter(reason.split(":")[0] for _, _, reason in self.skipped)
        lines = [
            f"wrote {self.output}: written {self.written}, skipped {len(self.skipped)}"
            + (
                f" ({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))})"
                if reasons
                else ""
            )
        ]
        lines += [f"  line {n} {name!r}: {why}" for n, name, why in self.skipped[:SHOW_SKIPPED]]
        if len(self.skipped) > SHOW_SKIPPED:
            lines.append(f"  ... and {len(self.skipped) - SHOW_SKIPPED} more")
        return "\n".join(lines)


def check_image(data: bytes) -> None:
    """Raise if the bytes are not a fully decodable image (verify() alone misses truncation)."""
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def create_lmdb(
    input_dir: str | Path,
    output: str | Path,
    labels: str | Path = LABELS_FILE,
    check: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> CreateReport:
    """Write the LMDB and return the report; ``labels`` is relative to ``input_dir``."""
    input_dir, output = Path(input_dir), Path(output)
    entries, malformed = read_labels(input_dir / labels)
    report = CreateReport(output)
    report.skipped += [(n, "", "malformed line (no tab)") for n, _ in malformed]
    if (output / "data.mdb").exists() and not overwrite:  # before reading any image
        raise FileExistsError(f"{output} already holds an LMDB; pass --overwrite to replace it")

    # Values are stored on 4 KiB overflow pages, so budget a page per sample on top of the
    # bytes; on Linux the map is sparse, so over-estimating costs nothing.
    paths = {e.line: resolve_image(input_dir, e.filename) for e in entries}
    estimate = sum(p.stat().st_size for p in paths.values() if p is not None)
    map_size = 2 * estimate + 8192 * len(entries) + (64 << 20)
    with LmdbWriter(output, map_size, overwrite) as writer:
        for entry in tqdm(entries, desc="create_lmdb", unit="img", disable=not progress):
            path = paths[entry.line]
            if not entry.label.strip():
                report.skipped.append((entry.line, entry.filename, "empty label"))
                continue
            if path is None:
                report.skipped.append((entry.line, entry.filename, "missing file"))
                continue
            data = path.read_bytes()
            if check:
                try:
                    check_image(data)
                except IMAGE_ERRORS as err:
                    report.skipped.append((entry.line, entry.filename, f"undecodable: {err}"))
                    continue
            report.written = writer.add(data, entry.label)
    report.skipped.sort()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="folder with images/, labels")
    parser.add_argument("--output", required=True, type=Path, help="LMDB folder to create")
    parser.add_argument("--labels", default=LABELS_FILE, help="labels file, relative to --input")
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode every image and skip the ones that fail (default: on)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing LMDB")
    args = parser.parse_args(argv)
    try:
        report = create_lmdb(args.input, args.output, args.labels, args.check, args.overwrite)
    except (FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.written else 1


if __name__ == "__main__":
    sys.exit(main())
