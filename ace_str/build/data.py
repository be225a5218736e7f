"""Charset, input transform, augmentation and datasets, built from a run's config."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from ace_str.build.transform import build_transform
from ace_str.data.augment import AugmentPolicy
from ace_str.data.charset import Charset
from ace_str.data.folder import find_datasets, open_dataset, open_training_roots
from ace_str.data.mixing import MixedDataset
from ace_str.data.shuffle import ShuffledLabels

log = logging.getLogger(__name__)


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


def synth_dataset(
    node: DictConfig,
    charset: Charset,
    transform: Callable[[Any], Any] | None = None,
    **overrides: Any,
) -> Dataset:
    """The synthetic renderer a ``data.synth`` node describes (``overrides``: e.g. another
    ``seed`` or ``length``); every synthetic set of a run or script is built here."""
    return instantiate(node, charset=charset, transform=transform, **overrides)


def build_train_dataset(cfg: DictConfig, charset: Charset) -> tuple[Dataset, bool]:
    """``data.train_sources`` mixed by ratio, else LMDB or labelled-folder roots, else the
    synthetic renderer; also whether to shuffle. ``data.augment`` applies to the roots' crops,
    never to validation."""
    transform = build_transform(cfg)
    augment = build_augment(cfg)
    if cfg.data.get("train_sources"):
        return build_mixed_dataset(cfg, charset, transform, augment), True
    roots = list(cfg.data.train_roots or [])
    if roots:
        try:
            dataset = open_training_roots(
                roots, charset, cfg.data.max_label_length, transform, augment, cfg.seed
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(f"data.train_roots: {error}") from None
        return shuffle_labels(dataset, cfg), True
    return shuffle_labels(synth_dataset(cfg.data.synth, charset, transform), cfg), False


def build_mixed_dataset(
    cfg: DictConfig,
    charset: Charset,
    transform: Callable[[Any], Any],
    augment: AugmentPolicy | None = None,
) -> MixedDataset:
    """``data.train_sources`` entries: ``{roots: [...], ratio}`` (LMDBs or labelled folders) or
    ``{ratio}`` alone (the synthetic renderer, optionally ``synth: {...}`` overriding
    ``data.synth`` fields); ``name`` defaults to the first root's folder name or ``synth``;
    ``start_step`` or ``start_fraction`` (of the run's steps) delays a source, ``stop_step`` or
    ``stop_fraction`` ends it (a curriculum). The first renderer draws from ``data.synth.seed``,
    each further one (unless its ``synth`` gives a seed) from its own seed. Each source gets
    label shuffling (``data.shuffle_ratio``); source i's crops are augmented with seed
    ``seed + 7919 * i``."""
    sources: Sequence[Any] = cfg.data.train_sources
    datasets, names, ratios, shuffles, starts, fractions = [], [], [], [], [], []
    stop_steps, stop_fractions = [], []
    renderers = 0  # synthetic sources so far
    for i, source in enumerate(sources):
        roots = [str(r) for r in (source.get("roots") or [])]
        if "ratio" not in source:
            raise ValueError(f"data.train_sources[{i}] has no ratio")
        if roots:
            try:
                dataset = open_training_roots(
                    roots,
                    charset,
                    cfg.data.max_label_length,
                    transform,
                    augment,
                    cfg.seed + 7919 * i,
                )
            except FileNotFoundError as error:
                raise FileNotFoundError(f"data.train_sources[{i}].roots: {error}") from None
            shuffles.append(True)
            default = Path(roots[0]).name
        else:
            given = source.get("synth") or {}
            node = OmegaConf.merge(cfg.data.synth, given)
            # a second renderer on the run's seed would draw the same words at the same indices
            # as the first: each further one gets its own stream unless its seed is given
            if renderers and "seed" not in given:
                node.seed = int(node.seed) + 7919 * renderers
            renderers += 1
            dataset = synth_dataset(node, charset, transform)
            shuffles.append(False)
            default = "synth"
        datasets.append(shuffle_labels(dataset, cfg))
        names.append(str(source.get("name") or default))
        ratios.append(float(source["ratio"]))
        if source.get("start_step") is not None and source.get("start_fraction") is not None:
            raise ValueError(
                f"data.train_sources[{i}]: give start_step or start_fraction, not both"
            )
        starts.append(int(source.get("start_step") or 0))
        fraction = source.get("start_fraction")
        fractions.append(None if fraction is None else float(fraction))
        stop_steps.append(source.get("stop_step"))
        stop_fractions.append(source.get("stop_fraction"))
    return MixedDataset(
        datasets, names, ratios, shuffles, starts, fractions, stop_steps, stop_fractions
    )


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
        sets["synth_val"] = synth_dataset(
            cfg.data.synth,
            charset,
            transform,
            seed=cfg.data.val_synth_seed,
            length=cfg.data.val_synth_size,
        )
    for root in cfg.data.val_roots or []:
        for path in find_datasets(root):
            sets[path.name] = open_dataset(
                path, charset, max_label_length=cfg.data.max_label_length, transform=transform
            )
    return sets
