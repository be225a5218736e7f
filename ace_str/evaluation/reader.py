"""Reading images whose identity must survive batching: benchmark samples and loose files.

Batches carry ``keys`` (an image path, or the sample index for an LMDB) for the samples they
kept, so a corrupt image dropped by the collate cannot shift later readings onto wrong files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ace_str.build.models import (
    attach_language_model,
    load_model,
    resolve_device,
    set_threads,
)
from ace_str.build.transform import inference_transform
from ace_str.data.charset import Charset
from ace_str.data.collate import Batch, Collator, unusable
from ace_str.data.lmdb import IMAGE_ERRORS, decode_image
from ace_str.scoring.evaluator import decode_logits

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass
class KeyedBatch(Batch):
    """A Batch that knows which samples it holds (``replace`` in to/pin_memory keeps them)."""

    keys: list[str] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)


class KeyedDataset(Dataset):
    """``dataset[i]`` as ``(i, sample)``; the sample may be None (corrupt)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


class KeyedCollator:
    """Collator over ``(index, sample)`` pairs; None when the whole batch was corrupt."""

    def __init__(self, charset: Charset, keys: Sequence[str]) -> None:
        self.collate = Collator(charset, encode_targets=False)
        self.keys = keys

    def __call__(self, items: Sequence[tuple[int, Any]]) -> KeyedBatch | None:
        kept = [(i, s) for i, s in items if not unusable(s)]
        batch = self.collate([s for _, s in kept])
        if batch is None:
            return None
        values = {f.name: getattr(batch, f.name) for f in fields(batch)}
        return KeyedBatch(
            **values, keys=[self.keys[i] for i, _ in kept], indices=[i for i, _ in kept]
        )


def sample_keys(dataset: Dataset) -> list[str]:
    """Image paths under the set root for labelled folders, else sample indices."""
    samples = getattr(dataset, "samples", None)
    root = getattr(dataset, "root", None)
    if samples is not None and root is not None:
        return [Path(path).relative_to(root).as_posix() for path, _ in samples]
    return [str(i) for i in range(len(dataset))]


def keyed_loader(
    dataset: Dataset,
    charset: Charset,
    batch_size: int,
    num_workers: int,
    prefetch_factor: int = 2,
    keys: Sequence[str] | None = None,
) -> DataLoader:
    """Ordered batches with keys; workers decode images while the model reads the last batch."""
    return DataLoader(
        KeyedDataset(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=KeyedCollator(charset, sample_keys(dataset) if keys is None else keys),
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
    )


def list_images(sources: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files named directly (any suffix) and image files found below named folders, in order."""
    items = [sources] if isinstance(sources, str | Path) else list(sources)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = (p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            files.extend(sorted(p for p in found if p.is_file()))
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    return files


class ImageFiles(Dataset):
    """Image files as ``(transform(image), "")``; an unreadable file warns and gives None."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Image.Image], Any]) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, str] | None:
        path = self.paths[index]
        try:
            return self.transform(decode_image(path)), ""
        except (*IMAGE_ERRORS, MemoryError) as err:
            log.warning("%s: unreadable image skipped (%s)", path, err)
            return None


@dataclass
class ReadResult:
    path: str
    text: str
    confidence: float


@torch.inference_mode()
def read_images(
    model: nn.Module,
    charset: Charset,
    transform: Callable[[Image.Image], Any],
    paths: Sequence[Path],
    device: torch.device,
    batch_size: int = 64,
    num_workers: int = 1,
) -> Iterator[ReadResult]:
    """Readings in input order; unreadable files are warned about and left out."""
    keys = [str(p) for p in paths]
    loader = keyed_loader(ImageFiles(paths, transform), charset, batch_size, num_workers, keys=keys)
    model.eval()
    for batch in loader:
        if batch is None:
            continue
        logits = model(batch.images.to(device, non_blocking=True))
        texts, confidences = decode_logits(model, logits, charset)
        for key, text, confidence in zip(batch.keys, texts, confidences, strict=True):
            yield ReadResult(key, text, confidence)


@dataclass
class ReadSetup:
    """What ``prepare_reading`` set up: the model rebuilt from its checkpoint, and the files."""

    model: nn.Module
    charset: Charset
    transform: Callable[[Image.Image], Any]
    paths: list[Path]
    device: torch.device


def prepare_reading(cfg: DictConfig) -> ReadSetup:
    """Everything a config can get wrong (checkpoint, images), before any reading, so read.py
    can report it in one line."""
    set_threads(cfg.num_threads, cfg.num_workers)
    device = resolve_device(cfg.device)
    model, charset, train_cfg = load_model(cfg.checkpoint, device, cfg.get("decoder"))
    attach_language_model(model, charset, cfg.get("lm"))
    sources = OmegaConf.to_object(cfg.images) if OmegaConf.is_config(cfg.images) else cfg.images
    paths = list_images(sources)
    transform = inference_transform(
        train_cfg, cfg.get("max_text_height"), cfg.get("margin"), cfg.get("min_aspect")
    )
    return ReadSetup(model, charset, transform, paths, device)


def read_with_checkpoint(cfg: DictConfig, prepared: ReadSetup | None = None) -> list[ReadResult]:
    """read.py: print ``path<TAB>text<TAB>confidence`` per image (and to ``cfg.output``)."""
    setup = prepared or prepare_reading(cfg)
    paths = setup.paths
    results = []
    handle = Path(cfg.output).open("w", encoding="utf-8") if cfg.output else None
    try:
        for result in read_images(
            setup.model,
            setup.charset,
            setup.transform,
            paths,
            setup.device,
            cfg.batch_size,
            cfg.num_workers,
        ):
            line = f"{result.path}\t{result.text}\t{result.confidence:.4f}"
            print(line)
            if handle is not None:
                handle.write(line + "\n")
            results.append(result)
    finally:
        if handle is not None:
            handle.close()
    skipped = len(paths) - len(results)
    log.info("read %d images, skipped %d unreadable (of %d)", len(results), skipped, len(paths))
    print(f"# read {len(results)}, skipped {skipped} unreadable, of {len(paths)} images")
    return results
