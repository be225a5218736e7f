"""Evaluate a checkpoint on every benchmark under a folder, rebuilt from its stored config."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from ace_str.engine import builders
from ace_str.engine.checkpoint import load_checkpoint
from ace_str.evaluation.evaluator import evaluate_batches
from ace_str.evaluation.report import add_means, markdown_table, write_tables

log = logging.getLogger(__name__)


def load_model(checkpoint: str | Path, device: torch.device):
    """Model, charset and the training config, from the checkpoint alone (never its name)."""
    state = load_checkpoint(checkpoint, device)
    cfg = builders.as_config(state["config"])
    charset = builders.build_charset(cfg)
    if list(charset.symbols) != list(state["charset"]):
        raise RuntimeError(f"{checkpoint}: the stored charset and config disagree")
    model = builders.build_model(cfg, charset).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return model, charset, cfg


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, dict[str, float]]:
    device = builders.resolve_device(cfg.device)
    model, charset, train_cfg = load_model(cfg.checkpoint, device)
    transform = builders.build_transform(train_cfg)
    paths = builders.find_datasets(cfg.data.root)
    if not paths:
        raise FileNotFoundError(f"no LMDB or labels.tsv folder under {cfg.data.root}")
    rows: dict[str, dict[str, float]] = {}
    for path in tqdm(paths, desc="benchmarks", disable=len(paths) < 2):
        dataset = builders.open_dataset(
            path,
            charset,
            max_label_length=cfg.data.max_label_length,
            transform=transform,
            filter_labels=False,
        )
        loader = builders.eval_loader(dataset, charset, cfg.data.batch_size, cfg.data.num_workers)
        start = time.perf_counter()
        result = evaluate_batches(model, loader, charset, device, protocol=cfg.protocol)
        seconds = time.perf_counter() - start
        rows[path.name] = result.totals.summary()
        log.info(
            "%s: %d images in %.1fs (%.0f images/s)",
            path.name,
            result.totals.samples,
            seconds,
            result.totals.samples / max(seconds, 1e-9),
        )
    rows = add_means(rows)
    table = markdown_table(rows)
    print(f"\n{Path(cfg.checkpoint)} ({cfg.protocol} protocol)\n\n{table}\n")
    out_dir = Path(cfg.output_dir) if cfg.output_dir else Path(cfg.checkpoint).parent
    stem = out_dir / f"eval_{Path(cfg.checkpoint).stem}_{Path(cfg.data.root).name}_{cfg.protocol}"
    for written in write_tables(rows, stem):
        log.info("wrote %s", written)
    return rows
