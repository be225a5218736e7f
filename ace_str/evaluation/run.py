"""Evaluate a checkpoint on the benchmarks under a folder, rebuilt from its stored config."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from ace_str.build.models import (
    attach_language_model,
    load_model,
    resolve_device,
    set_threads,
)
from ace_str.build.transform import inference_transform
from ace_str.data.charset import Charset
from ace_str.data.folder import LABELS_FILE, open_dataset
from ace_str.evaluation.benchmarks import FoundSet, find_benchmarks
from ace_str.evaluation.lexicon import Lexicon, constrain, head_loss_scorer, load_lexicons
from ace_str.evaluation.reader import keyed_loader, sample_keys
from ace_str.evaluation.report import (
    add_means,
    lexicon_column,
    markdown_table,
    worst_errors,
    write_predictions,
    write_tables,
)
from ace_str.scoring.evaluator import evaluate_batches
from ace_str.scoring.metrics import normalize_text
from ace_str.viz.grid import save_grid

log = logging.getLogger(__name__)


class LexiconTally:
    """Batch hook: lexicon-constrained readings scored per lexicon, from the same logits."""

    def __init__(self, model, charset, lexicons: list[Lexicon], protocol: str) -> None:
        self.model, self.charset, self.protocol = model, charset, protocol
        self.lexicons = lexicons
        self.correct = {lex.name: 0 for lex in lexicons}
        self.samples = {lex.name: 0 for lex in lexicons}

    def __call__(self, batch, logits, texts, confidences) -> None:
        for i, (key, text, truth) in enumerate(zip(batch.keys, texts, batch.texts, strict=True)):
            score = head_loss_scorer(self.model, self.charset, logits[i])
            for lex in self.lexicons:
                words = lex.words_for(key)
                if words is None:
                    continue
                word = constrain(text, words, self.protocol, score)
                self.samples[lex.name] += 1
                self.correct[lex.name] += int(word == normalize_text(truth, self.protocol))

    def accuracies(self, set_size: int, set_name: str) -> dict[str, float]:
        out = {}
        for name, n in self.samples.items():
            if n < set_size:
                log.warning("%s: lexicon %r covers %d of %d images", set_name, name, n, set_size)
            if n:
                out[lexicon_column(name)] = self.correct[name] / n
        return out


def evaluate_set(model, charset, transform, found: FoundSet, cfg: DictConfig, device, out: Path):
    """One set's summary row and its images/s; writes its predictions TSV and worst-error PNG."""
    dataset = open_dataset(
        found.path,
        charset,
        max_label_length=cfg.data.max_label_length,
        transform=transform,
        filter_labels=False,
    )
    keys = sample_keys(dataset)
    is_folder = (found.path / LABELS_FILE).is_file()
    lexicons = load_lexicons(found.path) if cfg.lexicons and is_folder else []
    tally = LexiconTally(model, charset, lexicons, cfg.protocol) if lexicons else None
    loader = keyed_loader(
        dataset, charset, cfg.data.batch_size, cfg.data.num_workers, cfg.data.prefetch_factor, keys
    )
    start = time.perf_counter()
    result = evaluate_batches(model, loader, charset, device, protocol=cfg.protocol, on_batch=tally)
    seconds = time.perf_counter() - start
    row = result.totals.summary()
    if tally is not None:
        row.update(tally.accuracies(result.totals.samples, found.name))
    write_predictions(result.readings, out / f"{found.name}_predictions.tsv", cfg.protocol)
    worst = [result.readings[i] for i in worst_errors(result.readings, cfg.protocol, cfg.worst)]
    if worst:
        position = {k: i for i, k in enumerate(keys)}
        samples = [dataset[position[r.key]] for r in worst]
        shown = [(s[0], r) for s, r in zip(samples, worst, strict=True) if s is not None]
        save_grid(
            [image for image, _ in shown],
            [f"read {r.prediction!r} / gt {r.truth!r} ({r.confidence:.2f})" for _, r in shown],
            out / f"{found.name}_worst.png",
        )
    return row, seconds


def language_model_suffix(lm_cfg: DictConfig | None) -> str:
    """What a table's name says about ``lm`` (no dot: the tables' writer reads it as a suffix),
    e.g. ``_lm0p5_1`` for weight 0.5 and bonus 1; empty without one."""
    if lm_cfg is None or not lm_cfg.weight:
        return ""
    return f"_lm{lm_cfg.weight:g}_{lm_cfg.length_bonus:g}".replace(".", "p")


@dataclass
class EvalSetup:
    """What ``prepare_evaluation`` set up: the model rebuilt from its checkpoint, and the sets."""

    model: nn.Module
    charset: Charset
    transform: Callable
    found_sets: list[FoundSet]
    device: torch.device


def prepare_evaluation(cfg: DictConfig) -> EvalSetup:
    """Everything a config can get wrong (checkpoint, data.root, protocol), before any reading,
    so evaluate.py can report it in one line."""
    set_threads(cfg.num_threads, cfg.data.num_workers)
    device = resolve_device(cfg.device)
    weights = cfg.get("weights") or "averaged"
    model, charset, train_cfg = load_model(cfg.checkpoint, device, cfg.get("decoder"), weights)
    transform = inference_transform(
        train_cfg, cfg.get("max_text_height"), cfg.get("margin"), cfg.get("min_aspect")
    )
    attach_language_model(model, charset, cfg.get("lm"))
    if not any(normalize_text(symbol, cfg.protocol) for symbol in charset.symbols):
        # e.g. a Chinese charset under the standard protocol: every text would compare as ""
        raise ValueError(
            f"protocol={cfg.protocol} erases every symbol of this model's charset "
            f"({charset!r}); use protocol=exact"
        )
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if not Path(cfg.data.root).is_dir():
        raise FileNotFoundError(f"data.root: no such folder: {cfg.data.root}")
    found_sets = find_benchmarks(cfg.data.root, cfg.benchmarks)
    if not found_sets:
        raise FileNotFoundError(
            f"no benchmark matching benchmarks={cfg.benchmarks} under {cfg.data.root}"
        )
    return EvalSetup(model, charset, transform, found_sets, device)


def evaluate_checkpoint(
    cfg: DictConfig, prepared: EvalSetup | None = None
) -> dict[str, dict[str, float]]:
    """Score every set found (``prepared``, or set up here), print and write the tables."""
    ev = prepared or prepare_evaluation(cfg)
    decoder = cfg.get("decoder")
    out_dir = Path(cfg.output_dir) if cfg.output_dir else Path(cfg.checkpoint).parent
    stem = out_dir / f"eval_{Path(cfg.checkpoint).stem}_{Path(cfg.data.root).name}_{cfg.protocol}"
    if decoder:
        stem = stem.with_name(f"{stem.name}_{decoder}")
    if cfg.get("weights") == "raw":
        stem = stem.with_name(f"{stem.name}_raw")
    if cfg.get("max_text_height") is not None:
        stem = stem.with_name(f"{stem.name}_cap{cfg.max_text_height}")
    if cfg.get("margin") is not None:
        stem = stem.with_name(f"{stem.name}_margin{cfg.margin:g}".replace(".", "p"))
    if cfg.get("min_aspect") is not None:
        stem = stem.with_name(f"{stem.name}_aspect{cfg.min_aspect:g}".replace(".", "p"))
    stem = stem.with_name(stem.name + language_model_suffix(cfg.get("lm")))
    per_set = stem.parent / f"{stem.name}_sets"
    rows: dict[str, dict[str, float]] = {}
    speeds: list[str] = []
    total_seconds = 0.0
    for found in tqdm(ev.found_sets, desc="benchmarks", disable=len(ev.found_sets) < 2):
        row, seconds = evaluate_set(
            ev.model, ev.charset, ev.transform, found, cfg, ev.device, per_set
        )
        rows[found.name] = row
        total_seconds += seconds
        speeds.append(f"{found.name}: {row['samples'] / max(seconds, 1e-9):.0f} images/s")
        log.info("%s: %d images in %.1fs", found.name, row["samples"], seconds)
    total = sum(r["samples"] for r in rows.values())
    speeds.append(f"overall: {total / max(total_seconds, 1e-9):.0f} images/s")
    rows = add_means(rows)
    table = markdown_table(rows)
    decoding = f", {decoder} decoding" if decoder else ""
    cap = getattr(ev.transform, "max_text_height", None)
    if cap is not None and ev.transform.keep_ratio:  # a stretched canvas ignores the cap
        decoding += f", text at most {cap} px high"
    if getattr(ev.transform, "margin", 0):
        decoding += f", sides widened by {ev.transform.margin:g} of the height"
    if getattr(ev.transform, "min_aspect", 0) and ev.transform.keep_ratio:
        aspect = ev.transform.min_aspect
        decoding += f", crops narrower than {aspect:g} times their height stretched to it"
    if language_model_suffix(cfg.get("lm")):
        decoding += f", language model weight {cfg.lm.weight:g} bonus {cfg.lm.length_bonus:g}"
    print(f"\n{Path(cfg.checkpoint)} ({cfg.protocol} protocol{decoding})\n\n{table}\n")
    print("speed (decoding overlapped with inference): " + ", ".join(speeds))
    for written in write_tables(rows, stem):
        log.info("wrote %s", written)
    log.info("per-set predictions and worst-error grids in %s", per_set)
    return rows
