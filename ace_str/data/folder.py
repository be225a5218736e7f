"""Labelled image folders (``images/`` + ``labels.tsv``) and picking a loader for a folder.

``labels.tsv`` holds ``filename<TAB>label`` lines, UTF-8, no header; a filename is relative to
``images/`` or, failing that, to the folder itself.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import ConcatDataset, Dataset

from ace_str.data.augment import AugmentedDataset, AugmentPolicy
from ace_str.data.charset import Charset
from ace_str.data.collate import Skip
from ace_str.data.filtering import SourceStats, filter_label
from ace_str.data.lmdb import IMAGE_ERRORS, LmdbDataset, Sample, decode_image
from ace_str.data.walk import folders_holding

log = logging.getLogger(__name__)

LABELS_FILE = "labels.tsv"


@dataclass(frozen=True)
class LabelLine:
    """One well-formed line of a labels file; ``line`` is 1-based for error messages."""

    line: int
    filename: str
    label: str


def read_labels(path: str | Path) -> tuple[list[LabelLine], list[tuple[int, str]]]:
    """Parse a labels file into good lines and malformed ``(line number, text)`` pairs.

    Only line endings are stripped from a label: labels may hold spaces. Blank lines are
    ignored; a line with no tab or an empty filename is malformed.
    """
    entries: list[LabelLine] = []
    malformed: list[tuple[int, str]] = []
    text = Path(path).read_text(encoding="utf-8-sig")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        filename, tab, label = line.partition("\t")
        if not tab or not filename.strip():
            malformed.append((number, line))
            continue
        entries.append(LabelLine(number, filename.strip(), label))
    return entries, malformed


def resolve_image(root: Path, filename: str) -> Path | None:
    """The image file for a labels-file entry: under ``images/`` first, then ``root``."""
    for candidate in (root / "images" / filename, root / filename):
        if candidate.is_file():
            return candidate
    return None


class LabelledFolderDataset(Dataset):
    """Word images listed in a labels file; same filtering and None-on-corrupt as LmdbDataset."""

    def __init__(
        self,
        root: str | Path,
        charset: Charset,
        max_label_length: int = 25,
        transform: Callable[[Image.Image], Any] | None = None,
        labels_file: str = LABELS_FILE,
        filter_labels: bool = True,
    ) -> None:
        if max_label_length <= 0:
            raise ValueError(f"max_label_length must be positive, got {max_label_length}")
        self.root = Path(root).resolve()
        labels_path = self.root / labels_file
        if not labels_path.is_file():
            raise FileNotFoundError(f"labels file not found: {labels_path}")
        self.transform = transform
        entries, malformed = read_labels(labels_path)
        self.stats = SourceStats(str(self.root), total=len(entries) + len(malformed))
        if malformed:
            self.stats.dropped["malformed_line"] += len(malformed)
            shown = ", ".join(f"line {n}: {text[:40]!r}" for n, text in malformed[:5])
            log.warning("%s: %d malformed lines (no tab): %s", labels_path, len(malformed), shown)
        self.samples: list[tuple[Path, str]] = []
        for entry in entries:
            image = resolve_image(self.root, entry.filename)
            if image is None:
                self.stats.dropped["missing_image"] += 1
                continue
            text = filter_label(entry.label, charset, max_label_length, self.stats, filter_labels)
            if text is not None:
                self.samples.append((image, text))
        self.stats.kept = len(self.samples)
        log.info("folder %s", self.stats.summary())
        if not self.samples:
            raise ValueError(
                f"no usable samples in {self.root} after filtering; {self.stats.summary()}"
            )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def corrupt(self) -> int:
        """Undecodable images met so far in this process."""
        return self.stats.corrupt

    def drop_stats(self) -> Counter:
        """Lines dropped while indexing (malformed, missing image, bad label), by reason."""
        return Counter(self.stats.dropped)

    def __getitem__(self, index: int) -> Sample | Skip:
        path, text = self.samples[index]
        try:
            image = decode_image(path)
        except IMAGE_ERRORS as err:
            self.stats.corrupt += 1
            log.warning("%s: corrupt image %s skipped (%s)", self.root, path.name, err)
            return Skip(str(self.root), path.name, "corrupt_image")
        return (self.transform(image) if self.transform else image), text


def find_datasets(root: str | Path, labels_file: str = LABELS_FILE) -> list[Path]:
    """Every LMDB folder (holds data.mdb) or labelled folder (holds a labels file) under root,
    symlinked folders included (data/README.md suggests links for sets kept elsewhere)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    return folders_holding(root, ("data.mdb", labels_file))


def open_dataset(
    path: str | Path, charset: Charset, labels_file: str = LABELS_FILE, **kw: Any
) -> LmdbDataset | LabelledFolderDataset:
    """Open a folder with the loader its contents call for, whatever the folder is named.

    A folder holding data.mdb, or only LMDBs below it, is read as LMDB; a folder holding the
    labels file as a labelled folder. ``kw`` goes to the dataset class.
    """
    path = Path(path)
    if (path / "data.mdb").is_file():
        return LmdbDataset(path, charset, **kw)
    if (path / labels_file).is_file():
        return LabelledFolderDataset(path, charset, labels_file=labels_file, **kw)
    found = find_datasets(path, labels_file)
    if found and all((p / "data.mdb").is_file() for p in found):
        return LmdbDataset(found, charset, **kw)
    raise FileNotFoundError(
        f"{path} holds neither data.mdb nor {labels_file}"
        + (f"; open the datasets below it one by one: {[str(p) for p in found]}" if found else "")
    )


def open_training_roots(
    roots: Sequence[str | Path],
    charset: Charset,
    max_label_length: int,
    transform: Callable[[Image.Image], Any] | None,
    augment: AugmentPolicy | None = None,
    seed: int = 0,
) -> Dataset:
    """One dataset over every LMDB and labelled folder found under ``roots`` (training data
    may be MJSynth LMDBs, an ``images/`` + ``labels.tsv`` folder such as real_train, or both);
    with ``augment``, each crop is augmented per (``seed``, index) before ``transform``."""
    if augment is not None:
        crops = open_training_roots(roots, charset, max_label_length, None)
        return AugmentedDataset(crops, augment, transform, seed)
    missing = [str(r) for r in roots if not Path(r).exists()]
    if missing:
        raise FileNotFoundError(f"training data: no such folder: {', '.join(missing)}")
    found = [p for root in roots for p in find_datasets(root)]
    if not found:
        raise FileNotFoundError(f"no data.mdb or {LABELS_FILE} under {', '.join(map(str, roots))}")
    lmdbs = [p for p in found if (p / "data.mdb").is_file()]
    parts: list[Dataset] = []
    if lmdbs:
        parts.append(LmdbDataset(lmdbs, charset, max_label_length, transform))
    for path in found:
        if path not in lmdbs:
            parts.append(LabelledFolderDataset(path, charset, max_label_length, transform))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)
