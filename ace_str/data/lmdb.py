"""LMDB word-image datasets in the clovaai layout (``num-samples``, ``image-%09d``, ``label-%09d``).

Keys are 1-based. The index of kept samples is built once at init from the labels and the
environment is closed again; datasets hold no handle, so they pickle, and each process opens
an LMDB read-only and lock-free on its first ``__getitem__``.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ace_str.data.charset import Charset, FilterStats
from ace_str.data.collate import record_skip
from ace_str.data.walk import folders_holding

log = logging.getLogger(__name__)

Sample = tuple[Any, str]

# Errors Pillow raises for truncated, unknown or hostile image bytes.
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class SourceStats:
    """What loading one LMDB or labelled folder kept and dropped, by reason.

    ``corrupt`` counts undecodable images met by ``__getitem__`` in *this* process; DataLoader
    workers keep their own copies, so read it from the main process only when num_workers=0.
    """

    path: str
    total: int = 0
    kept: int = 0
    stripped: int = 0
    dropped: Counter = field(default_factory=Counter)
    corrupt: int = 0

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        return (
            f"{self.path}: total {self.total}, kept {self.kept}, "
            f"stripped {self.stripped}, dropped {sum(self.dropped.values())} ({reasons})"
        )


def filter_label(
    label: str,
    charset: Charset,
    max_label_length: int,
    stats: SourceStats,
    filter_labels: bool = True,
) -> str | None:
    """Normalise a raw label with the charset and length limit; None drops the sample.

    With ``filter_labels=False`` the raw label is kept untouched (for scoring against the
    original ground truth); only a label that could not be read at all is dropped then.
    """
    if not filter_labels:
        return label
    counts = FilterStats()
    text = charset.normalize(label, counts)
    stats.stripped += counts.stripped
    stats.dropped.update(counts.skipped)
    if text is not None and len(text) > max_label_length:
        stats.dropped["too_long"] += 1
        return None
    return text


def decode_image(data: bytes | Path) -> Image.Image:
    """Fully decode image bytes or a file so corruption surfaces here, not in a transform."""
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        image.load()
    return image


def find_lmdbs(root: str | Path) -> list[Path]:
    """The LMDB folders at or below ``root`` (every folder holding a ``data.mdb``), sorted;
    symlinked folders are followed, as by ``find_datasets``."""
    root = Path(root)
    if (root / "data.mdb").is_file():
        return [root]
    found = folders_holding(root, ("data.mdb",)) if root.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no LMDB (data.mdb) at or below {root}")
    return found


def open_lmdb(path: str | Path) -> lmdb.Environment:
    """Read-only, lock-free, no readahead: many workers read many LMDBs concurrently."""
    return lmdb.open(
        str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=256
    )


# py-lmdb refuses to open one LMDB twice in a process, so datasets over the same files share
# one environment per process. A forked worker inherits the parent's handles, which must not
# be used and would block a fresh open; they hold no lock (lock=False), so closing is safe.
_ENVS: dict[Path, lmdb.Environment] = {}
_ENVS_PID = os.getpid()


def _forget_inherited() -> None:
    global _ENVS_PID
    if _ENVS_PID != os.getpid():
        for env in _ENVS.values():
            env.close()
        _ENVS.clear()
        _ENVS_PID = os.getpid()


def shared_env(path: Path) -> lmdb.Environment:
    """This process's read-only environment for an LMDB folder, opened on first use."""
    _forget_inherited()
    if path not in _ENVS:
        _ENVS[path] = open_lmdb(path)
    return _ENVS[path]


@contextmanager
def _scan_env(path: Path) -> Iterator[lmdb.Environment]:
    """The shared environment if this process already reads the LMDB, else a temporary one."""
    _forget_inherited()
    if path in _ENVS:
        yield _ENVS[path]
        return
    env = open_lmdb(path)
    try:
        yield env
    finally:
        env.close()


class LmdbDataset(Dataset):
    """Word images and labels from one or many clovaai-layout LMDBs.

    ``root`` is an LMDB folder, a folder with LMDBs below it, or a list of those.
    ``__getitem__`` returns ``(transform(image) or PIL image, label)``, or None when the image
    bytes are missing, empty, undecodable, smaller than ``min_image_side`` pixels or refused by
    the transform (counted in ``corrupt`` and recorded with key and reason for the trainer);
    drop those in the collate. Unreadable labels are dropped, and counted, at init.
    """

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        charset: Charset,
        max_label_length: int = 25,
        transform: Callable[[Image.Image], Any] | None = None,
        filter_labels: bool = True,
        min_image_side: int = 2,
    ) -> None:
        if max_label_length <= 0:
            raise ValueError(f"max_label_length must be positive, got {max_label_length}")
        roots = [root] if isinstance(root, str | Path) else list(root)
        paths = [p for r in roots for p in find_lmdbs(r)]
        self.paths: list[Path] = list(dict.fromkeys(p.resolve() for p in paths))
        self.charset = charset
        self.max_label_length = max_label_length
        self.transform = transform
        self.filter_labels = filter_labels
        self.min_image_side = min_image_side
        self._warned: set[tuple[str, int]] = set()
        self.stats: list[SourceStats] = []
        # Kept 1-based keys per LMDB as int arrays: a list of strings for ~9M MJSynth samples
        # would cost gigabytes and be copied into every worker.
        self._keys: list[np.ndarray] = []
        for path in self.paths:
            keys, stats = self._index(path)
            self._keys.append(keys)
            self.stats.append(stats)
            log.info("LMDB %s", stats.summary())
        self._ends = np.cumsum([len(k) for k in self._keys]).tolist()
        if not self._ends or self._ends[-1] == 0:
            raise ValueError(
                f"no usable samples in {[str(r) for r in roots]} after filtering "
                f"(charset {charset!r}, max_label_length {max_label_length}); "
                + "; ".join(s.summary() for s in self.stats)
            )

    def _index(self, path: Path) -> tuple[np.ndarray, SourceStats]:
        stats = SourceStats(str(path))
        with _scan_env(path) as env, env.begin(write=False) as txn:
            raw = txn.get(b"num-samples")
            try:
                stats.total = int(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: missing or invalid 'num-samples' key") from None
            keys = []
            for index in range(1, stats.total + 1):
                label = txn.get(b"label-%09d" % index)
                if label is None:
                    stats.dropped["missing_label"] += 1
                    continue
                try:
                    text = label.decode("utf-8")
                except UnicodeDecodeError:
                    stats.dropped["label_not_utf8"] += 1
                    continue
                kept = filter_label(
                    text, self.charset, self.max_label_length, stats, self.filter_labels
                )
                if kept is not None:
                    keys.append(index)
        stats.kept = len(keys)
        return np.asarray(keys, dtype=np.int64), stats

    def __len__(self) -> int:
        return self._ends[-1]

    @property
    def corrupt(self) -> int:
        """Undecodable images met so far in this process."""
        return sum(s.corrupt for s in self.stats)

    def drop_stats(self) -> Counter:
        """Records dropped while indexing (bad labels), by reason, over every LMDB."""
        dropped: Counter = Counter()
        for stats in self.stats:
            dropped.update(stats.dropped)
        return dropped

    def __getitem__(self, index: int) -> Sample | None:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        source = bisect.bisect_right(self._ends, index)
        start = self._ends[source - 1] if source else 0
        key = int(self._keys[source][index - start])
        with shared_env(self.paths[source]).begin(write=False) as txn:
            label = txn.get(b"label-%09d" % key)
            data = txn.get(b"image-%09d" % key)
        stats = self.stats[source]
        try:
            # Normalising again is deterministic, so this matches the label kept at init.
            text = filter_label(
                label.decode("utf-8"),
                self.charset,
                self.max_label_length,
                SourceStats(""),
                self.filter_labels,
            )
            if text is None:
                raise _Unusable("label_filtered")
            if data is None:
                raise _Unusable("missing_image")
            if not data:
                raise _Unusable("empty_image")
            image = decode_image(data)
            if min(image.size) < self.min_image_side:
                raise _Unusable("tiny_image")
            sample = self.transform(image) if self.transform else image
        except _Unusable as err:
            return self._skip(stats, key, str(err), "")
        except (AttributeError, UnicodeDecodeError):  # the label vanished or changed since init
            return self._skip(stats, key, "bad_label", "")
        except IMAGE_ERRORS as err:
            return self._skip(stats, key, "corrupt_image", err)
        except Exception as err:  # a decodable image the transform cannot handle (odd mode)
            return self._skip(stats, key, "transform_error", err)
        return sample, text

    def _skip(self, stats: SourceStats, key: int, reason: str, err: object) -> None:
        """Count, record for the trainer (see ``record_skip``) and log one unusable record."""
        stats.corrupt += 1
        record_skip(stats.path, f"image-{key:09d}", reason)
        if (stats.path, key) not in self._warned:  # once per record and process, not per epoch
            self._warned.add((stats.path, key))
            log.warning("%s: image-%09d skipped: %s %s", stats.path, key, reason, err)
        return None


class _Unusable(Exception):
    """A record ``__getitem__`` skips; the message is the reason counted."""
