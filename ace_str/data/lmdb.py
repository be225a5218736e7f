"""LMDB word-image datasets in the clovaai layout (``num-samples``, ``image-%09d``, ``label-%09d``).

Keys are 1-based; this module is the one place that writes (``LmdbWriter``) and reads them.
The index of kept samples is built once at init from the labels and the environment is
closed again; each dataset then takes its own read-only, lock-free handle in each process on
its first ``__getitem__`` and drops it when pickled, so it travels to DataLoader workers.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import lmdb
import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ace_str.data.charset import Charset
from ace_str.data.collate import Skip
from ace_str.data.filtering import SourceStats, filter_label
from ace_str.data.walk import folders_holding

log = logging.getLogger(__name__)

Sample = tuple[Any, str]

# Errors Pillow raises for truncated, unknown or hostile image bytes.
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


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


NUM_SAMPLES = b"num-samples"


def image_key(index: int) -> bytes:
    """The key of the ``index``-th (1-based) image."""
    return b"image-%09d" % index


def label_key(index: int) -> bytes:
    """The key of the ``index``-th (1-based) label."""
    return b"label-%09d" % index


def open_lmdb(path: str | Path) -> lmdb.Environment:
    """Read-only, lock-free, no readahead: many workers read many LMDBs concurrently."""
    return lmdb.open(
        str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=256
    )


# py-lmdb refuses to open the same files twice in one process, so datasets over one LMDB must
# share a handle. The datasets own the handles (strong references); this index holds none and
# only finds a live one, so a handle closes with the last dataset reading through it. A forked
# worker inherits handles it must not use and that would block a fresh open; they hold no
# lock (lock=False), so it closes them first.
_LIVE: weakref.WeakValueDictionary[Path, lmdb.Environment] = weakref.WeakValueDictionary()
_LIVE_PID = os.getpid()


def _live_handles() -> weakref.WeakValueDictionary[Path, lmdb.Environment]:
    global _LIVE_PID
    if _LIVE_PID != os.getpid():
        for env in list(_LIVE.values()):
            env.close()
        _LIVE.clear()
        _LIVE_PID = os.getpid()
    return _LIVE


def reader_handle(path: Path) -> lmdb.Environment:
    """A read-only handle on ``path`` in this process: the live one if a dataset holds it,
    else a new one, which stays open while the caller keeps a reference to it."""
    live = _live_handles()
    env = live.get(path)
    if env is None:
        env = live[path] = open_lmdb(path)
    return env


def read_num_samples(txn: lmdb.Transaction, path: str | Path) -> int:
    """The declared record count; a database without it (a failed write) is refused."""
    raw = txn.get(NUM_SAMPLES)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: missing or invalid 'num-samples' key") from None


def count_lmdb(path: str | Path) -> int:
    """``num-samples`` of one LMDB, read without touching a record."""
    env = open_lmdb(path)
    try:
        with env.begin(write=False) as txn:
            return read_num_samples(txn, path)
    finally:
        env.close()


class LmdbWriter:
    """Writes samples under consecutive 1-based keys, committing every ``commit_every``.

    ``num-samples`` goes in last, with the final commit, so a write that fails or is
    interrupted leaves a database every reader refuses rather than a valid-looking half one;
    an error inside ``with`` aborts the open transaction. An existing LMDB at ``path`` is an
    error unless ``overwrite``, which deletes it first, so no old records mix with new ones.
    """

    def __init__(
        self,
        path: str | Path,
        map_size: int,
        overwrite: bool = False,
        commit_every: int = 1000,
    ) -> None:
        self.path = Path(path)
        if (self.path / "data.mdb").exists():
            if not overwrite:
                raise FileExistsError(
                    f"{self.path} already holds an LMDB; pass --overwrite to replace it"
                )
            for name in ("data.mdb", "lock.mdb"):
                (self.path / name).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.commit_every = commit_every
        self.written = 0
        # LMDB reserves the map lazily (sparse on Linux), so a generous map_size costs no disk.
        self._env = lmdb.open(str(self.path), map_size=map_size)
        self._txn: lmdb.Transaction | None = self._env.begin(write=True)

    def add(self, image: bytes, label: str | bytes) -> int:
        """Store one sample; returns its 1-based key index."""
        if self._txn is None:
            raise RuntimeError(f"{self.path}: writer already finished or aborted")
        self.written += 1
        self._txn.put(image_key(self.written), image)
        self._txn.put(label_key(self.written), label.encode() if isinstance(label, str) else label)
        if self.written % self.commit_every == 0:
            self._txn.commit()
            self._txn = self._env.begin(write=True)
        return self.written

    def finish(self) -> int:
        """Write ``num-samples``, commit and close; returns the number of samples."""
        if self._txn is None:
            raise RuntimeError(f"{self.path}: writer already finished or aborted")
        try:
            self._txn.put(NUM_SAMPLES, str(self.written).encode())
            self._txn.commit()
        except BaseException:
            self._txn.abort()
            raise
        finally:
            self._txn = None
            self._env.close()
        return self.written

    def abort(self) -> None:
        """Drop the uncommitted samples and close, leaving no ``num-samples``."""
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
            self._env.close()

    def __enter__(self) -> LmdbWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.finish()
        else:
            self.abort()


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
        self._envs: list[lmdb.Environment | None] = [None] * len(self.paths)
        self._pid = os.getpid()
        if not self._ends or self._ends[-1] == 0:
            raise ValueError(
                f"no usable samples in {[str(r) for r in roots]} after filtering "
                f"(charset {charset!r}, max_label_length {max_label_length}); "
                + "; ".join(s.summary() for s in self.stats)
            )

    def _index(self, path: Path) -> tuple[np.ndarray, SourceStats]:
        stats = SourceStats(str(path))
        live = _live_handles().get(path)  # py-lmdb would refuse a second handle
        env = live or open_lmdb(path)
        try:
            with env.begin(write=False) as txn:
                keys = self._scan(txn, path, stats)
        finally:
            if live is None:
                env.close()
        stats.kept = len(keys)
        return np.asarray(keys, dtype=np.int64), stats

    def _scan(self, txn: lmdb.Transaction, path: Path, stats: SourceStats) -> list[int]:
        stats.total = read_num_samples(txn, path)
        keys = []
        for index in range(1, stats.total + 1):
            label = txn.get(label_key(index))
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
        return keys

    def __len__(self) -> int:
        return self._ends[-1]

    def env(self, source: int) -> lmdb.Environment:
        """This process's handle on LMDB ``source``, taken on first use and held until the
        dataset goes; a forked worker drops the parent's (``reader_handle`` closes them)."""
        if self._pid != os.getpid():
            self._envs = [None] * len(self.paths)
            self._pid = os.getpid()
        env = self._envs[source]
        if env is None:
            env = self._envs[source] = reader_handle(self.paths[source])
        return env

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_envs"] = [None] * len(self.paths)  # handles do not pickle; reopened on use
        return state

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

    def __getitem__(self, index: int) -> Sample | Skip:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        source = bisect.bisect_right(self._ends, index)
        start = self._ends[source - 1] if source else 0
        key = int(self._keys[source][index - start])
        with self.env(source).begin(write=False) as txn:
            label = txn.get(label_key(key))
            data = txn.get(image_key(key))
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

    def _skip(self, stats: SourceStats, key: int, reason: str, err: object) -> Skip:
        """Count and log one unusable record; the ``Skip`` returned reaches the trainer
        inside the batch (see ``Collator``)."""
        stats.corrupt += 1
        skip = Skip(stats.path, image_key(key).decode(), reason)
        if (stats.path, key) not in self._warned:  # once per record and process, not per epoch
            self._warned.add((stats.path, key))
            log.warning("%s: image-%09d skipped: %s %s", stats.path, key, reason, err)
        return skip


class _Unusable(Exception):
    """A record ``__getitem__`` skips; the message is the reason counted."""
