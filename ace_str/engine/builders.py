"""Everything a run needs, built from its config by Hydra ``_target_`` instantiation."""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from ace_str.data.augment import AugmentPolicy
from ace_str.data.charset import Charset
from ace_str.data.collate import Collator
from ace_str.data.folder import (  # noqa: F401 (find_datasets, open_dataset re-exported)
    find_datasets,
    open_dataset,
    open_training_roots,
)
from ace_str.data.mixing import MixedDataset, build_mixed_dataset
from ace_str.data.sampler import ResumableSampler
from ace_str.data.shuffle import ShuffledLabels
from ace_str.models.recognizer import Recognizer

log = logging.getLogger(__name__)

PREFETCH_FACTOR = 4  # batches each training worker prepares ahead


def as_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)


def build_charset(cfg: DictConfig) -> Charset:
    return instantiate(cfg.charset)


def build_model(cfg: DictConfig, charset: Charset) -> Recognizer:
    return instantiate(cfg.model, head=instantiate(cfg.head), num_classes=charset.num_classes)


def build_transform(cfg: DictConfig):
    return instantiate(cfg.data.transform)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_augment(cfg: DictConfig) -> AugmentPolicy | None:
    """``data.augment`` (an AugmentPolicy for real training crops), or None when off."""
    node = cfg.data.get("augment")
    if not node:
        return None
    policy = instantiate(node)
    if not isinstance(policy, AugmentPolicy):
        raise TypeError(f"data.augment must build an AugmentPolicy, got {type(policy).__name__}")
    log.info("training crops (LMDB, folders) augmented: %s", policy)
    return policy


def build_train_dataset(cfg: DictConfig, charset: Charset) -> tuple[Dataset, bool]:
    """LMDB or labelled-folder roots when configured, else the synthetic renderer; also
    whether to shuffle. ``data.augment`` applies to the roots' crops, never to validation."""
    transform = build_transform(cfg)
    augment = build_augment(cfg)
    if cfg.data.get("train_sources"):  # several sources mixed by ratio; see data/mixing.py
        wrap = lambda dataset: shuffle_labels(dataset, cfg)  # noqa: E731
        sources = cfg.data.train_sources
        length = cfg.data.max_label_length
        mixed = build_mixed_dataset(
            sources, cfg.data.synth, charset, length, transform, wrap, augment, cfg.seed
        )
        return mixed, True
    roots = list(cfg.data.train_roots or [])
    if roots:
        try:
            dataset = open_training_roots(
                roots, charset, cfg.data.max_label_length, transform, augment, cfg.seed
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(f"data.train_roots: {error}") from None
        return shuffle_labels(dataset, cfg), True
    synth = instantiate(cfg.data.synth, charset=charset, transform=transform)
    return shuffle_labels(synth, cfg), False


def shuffle_labels(dataset: Dataset, cfg: DictConfig) -> Dataset:
    """Scrambles the character order of a ``data.shuffle_ratio`` share of training labels
    (paper Fig. 4); validation and evaluation sets are never wrapped."""
    ratio = cfg.data.get("shuffle_ratio", 0.0) or 0.0
    if ratio == 0.0:
        return dataset
    log.info("training labels: %.0f%% with shuffled character order", 100 * ratio)
    return ShuffledLabels(dataset, ratio, cfg.seed)


def build_val_datasets(cfg: DictConfig, charset: Charset) -> dict[str, Dataset]:
    """A held-out synthetic set (other seed) plus every dataset under data.val_roots."""
    transform = build_transform(cfg)
    sets: dict[str, Dataset] = {}
    if cfg.data.val_synth_size > 0:
        sets["synth_val"] = instantiate(
            cfg.data.synth,
            charset=charset,
            transform=transform,
            seed=cfg.data.val_synth_seed,
            length=cfg.data.val_synth_size,
        )
    for root in cfg.data.val_roots or []:
        for path in find_datasets(root):
            sets[path.name] = open_dataset(
                path, charset, max_label_length=cfg.data.max_label_length, transform=transform
            )
    return sets


def train_loader(
    dataset: Dataset,
    cfg: DictConfig,
    charset: Charset,
    shuffle: bool,
    start_sample: int,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Batches from global sample ``start_sample`` on; rank r of world_size reads its shard."""
    batch_size = cfg.data.batch_size
    if isinstance(dataset, MixedDataset):
        batching = {
            "batch_sampler": dataset.batch_sampler(
                batch_size,
                cfg.seed,
                start_sample,
                rank,
                world_size,
                cfg.trainer.max_steps,
                int(cfg.trainer.get("accumulate") or 1),
            )
        }
    else:
        sampler = ResumableSampler(len(dataset), cfg.seed, shuffle, start_sample, rank, world_size)
        batching = {"batch_size": batch_size, "sampler": sampler, "drop_last": True}
    return DataLoader(
        dataset,
        **batching,
        num_workers=cfg.data.num_workers,
        collate_fn=Collator(charset, max_label_length=cfg.data.max_label_length),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=PREFETCH_FACTOR if cfg.data.num_workers > 0 else None,
        # a private generator: creating the iterator must not draw from the global RNG,
        # or a resumed run's dropout would differ from an uninterrupted one
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def eval_loader(dataset: Dataset, charset: Charset, batch_size: int, num_workers: int):
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=Collator(charset, encode_targets=False),
        pin_memory=torch.cuda.is_available(),
    )
