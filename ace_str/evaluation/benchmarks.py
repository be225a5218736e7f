"""The standard STR benchmarks: expected sizes, folder names, named groups, and finding them.

A set is recognised by its folder name, case-insensitively: the clovaai deep-text-recognition-
benchmark names (``IIIT5k_3000``, ``SVT``, ``IC03_860``, ``IC03_867``, ``IC13_857``,
``IC13_1015``, ``IC15_1811``, ``IC15_2077``, ``SVTP``, ``CUTE80``), PARSeq's (``IIIT5k``) and
plain names (``IIIT5K``, ``IC03``, ``IC13``, ``IC15``, ``CUTE``, ``CT80``). A plain name shared by
two versions (IC03, IC13, IC15) picks the version whose size matches. The folder may be an LMDB
or hold ``labels.tsv``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ace_str.data.folder import LABELS_FILE, find_datasets, read_labels
from ace_str.data.lmdb import count_lmdb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Benchmark:
    name: str
    samples: int
    irregular: bool
    folder_names: tuple[str, ...]  # exact (case-insensitive) names, this version only


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("IIIT5k_3000", 3000, False, ("iiit5k_3000", "iiit5k", "iiit")),
    Benchmark("SVT_647", 647, False, ("svt", "svt_647")),
    Benchmark("IC03_860", 860, False, ("ic03_860",)),
    Benchmark("IC03_867", 867, False, ("ic03_867",)),
    Benchmark("IC13_857", 857, False, ("ic13_857",)),
    Benchmark("IC13_1015", 1015, False, ("ic13_1015",)),
    Benchmark("IC15_1811", 1811, True, ("ic15_1811",)),
    Benchmark("IC15_2077", 2077, True, ("ic15_2077",)),
    Benchmark("SVTP_645", 645, True, ("svtp", "svtp_645", "svt_p", "svt-p")),
    Benchmark("CUTE80_288", 288, True, ("cute80", "cute80_288", "cute", "ct80")),
)
BY_NAME = {b.name: b for b in BENCHMARKS}

# Names that several versions share; the size found decides, else the first (the smaller) wins.
SHARED_NAMES: dict[str, tuple[str, ...]] = {
    "ic03": ("IC03_860", "IC03_867"),
    "ic13": ("IC13_857", "IC13_1015"),
    "ic15": ("IC15_1811", "IC15_2077"),
}

GROUPS: dict[str, tuple[str, ...]] = {
    "regular": tuple(b.name for b in BENCHMARKS if not b.irregular),
    "irregular": tuple(b.name for b in BENCHMARKS if b.irregular),
    "clovaai": tuple(b.name for b in BENCHMARKS),
    # PARSeq's test.py: TEST_BENCHMARK (the full versions) and TEST_BENCHMARK_SUB
    "parseq": ("IIIT5k_3000", "SVT_647", "IC13_1015", "IC15_2077", "SVTP_645", "CUTE80_288"),
    "parseq_sub": ("IIIT5k_3000", "SVT_647", "IC13_857", "IC15_1811", "SVTP_645", "CUTE80_288"),
}
ALL_FOUND = "all_found"


@dataclass(frozen=True)
class FoundSet:
    name: str  # registry name, or the folder name for an unregistered folder
    path: Path
    samples: int  # records in the LMDB or lines in labels.tsv, before any image is read
    expected: int | None  # None: not a registered benchmark


def count_records(path: Path, labels_file: str = LABELS_FILE) -> int:
    """How many samples a set declares, cheaply: the LMDB's own count or labels-file lines."""
    if (path / "data.mdb").is_file():
        return count_lmdb(path)
    entries, malformed = read_labels(path / labels_file)
    return len(entries) + len(malformed)


def identify(folder_name: str, samples: int) -> Benchmark | None:
    """The registry entry a folder name (and, for shared names, its size) stands for."""
    key = folder_name.casefold()
    if key in SHARED_NAMES:
        versions = [BY_NAME[n] for n in SHARED_NAMES[key]]
        return next((b for b in versions if b.samples == samples), versions[0])
    return next((b for b in BENCHMARKS if key in b.folder_names), None)


def resolve_selection(selection: str | Sequence[str]) -> list[str] | None:
    """Registry (or folder) names a ``benchmarks=`` value asks for; None means all found.

    Accepts a group name, a registry name, a comma-separated string or a list of those.
    """
    items = [selection] if isinstance(selection, str) else list(selection)
    names: list[str] = []
    for item in (p.strip() for i in items for p in str(i).split(",")):
        if not item:
            continue
        if item == ALL_FOUND:
            return None
        names.extend(GROUPS.get(item, (item,)))
    return list(dict.fromkeys(names))


def find_benchmarks(
    root: str | Path, selection: str | Sequence[str] = ALL_FOUND, labels_file: str = LABELS_FILE
) -> list[FoundSet]:
    """The selected sets under ``root``, registry order first, then unregistered folders.

    With ``all_found`` every dataset folder is kept, unregistered ones under their folder name;
    otherwise only the selected names (a selection may name an unregistered folder). A size
    that differs from the registry's is a warning, not an error: the set is still evaluated.
    Selected or registered sets that are missing are logged in one line.
    """
    wanted = resolve_selection(selection)
    registered: dict[str, FoundSet] = {}
    others: list[FoundSet] = []
    for path in find_datasets(root, labels_file):
        samples = count_records(path, labels_file)
        bench = identify(path.name, samples)
        if bench is None or bench.name in registered:
            if bench is not None:
                log.warning(
                    "%s: %s already found at %s; kept under its folder name",
                    path,
                    bench.name,
                    registered[bench.name].path,
                )
            others.append(FoundSet(path.name, path, samples, None))
            continue
        registered[bench.name] = FoundSet(bench.name, path, samples, bench.samples)
    ordered = [registered[b.name] for b in BENCHMARKS if b.name in registered] + others
    if wanted is None:
        chosen = ordered
        missing = [b.name for b in BENCHMARKS if b.name not in registered]
        level = logging.INFO
    else:
        by_name = {s.name: s for s in ordered}
        chosen = [by_name[n] for n in wanted if n in by_name]
        missing = [n for n in wanted if n not in by_name]
        level = logging.WARNING
    if missing:
        log.log(level, "benchmarks not found under %s: %s", root, ", ".join(missing))
    for found in chosen:
        if found.expected is not None and found.samples != found.expected:
            log.warning(
                "%s at %s holds %d samples, not the standard %d; evaluated anyway, but its "
                "figures are not comparable with published ones",
                found.name,
                found.path,
                found.samples,
                found.expected,
            )
    return chosen
