"""The training loop: steps, validation, checkpoints; it never asks which head it trains."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import ConcatDataset
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ace_str.build.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ace_str.build.data import build_train_dataset, build_val_datasets
from ace_str.build.loaders import PREFETCH_FACTOR, eval_loader, train_loader
from ace_str.build.models import build_charset, build_model, resolve_device
from ace_str.data.collate import Batch
from ace_str.engine import budget, distributed
from ace_str.engine.averaging import build_average
from ace_str.engine.tensorboard import add_grid
from ace_str.scoring.evaluator import evaluate_batches
from ace_str.viz.maps import input_map_figure

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


VAL_METRICS = ("word_accuracy", "one_minus_ned", "cer", "correct_rate", "accurate_rate")


class NonFiniteError(RuntimeError):
    pass


class Trainer:
    """Builds the run from ``cfg`` and trains it for ``trainer.max_steps`` steps.

    Everything written goes under ``output_dir`` (the Hydra run folder). Under torchrun each
    rank trains a DistributedDataParallel replica on its shard of the stream (global batch =
    ``data.batch_size`` x world size); rank 0 alone logs, validates and writes checkpoints.
    ``self.model`` is always the bare module (its ``head``, its checkpoint keys); ``self.net``
    is what the forward pass goes through (DDP or the same module). With ``trainer.ema`` or
    ``trainer.swa``, ``self.average`` holds the averaged weights, which validation, best.ckpt
    and the checkpoint's ``model`` key use (see engine/averaging.py); ``trainer.accumulate``
    sums the gradients of that many batches into each optimizer step, and every count
    (``step``, ``max_steps``, the schedule, logging, validation, saves) is of optimizer steps.
    """

    def __init__(self, cfg: DictConfig, output_dir: str | Path) -> None:
        self._started = time.monotonic()  # trainer.budget_minutes counts from here
        self.cfg = cfg
        self.tcfg = cfg.trainer
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.output_dir.glob(".*.ckpt.*.tmp"):  # a save cut short by SIGKILL
            stale.unlink(missing_ok=True)
        if self.tcfg.num_threads:
            torch.set_num_threads(self.tcfg.num_threads)
        seed_everything(cfg.seed)
        self.dist, self.device = distributed.setup(resolve_device(cfg.device))
        if self.dist.enabled:
            self.cfg = cfg = self._scale_lr(cfg)
        self.charset = build_charset(cfg)
        self.model = build_model(cfg, self.charset).to(self.device)
        self._check_label_length()
        if self.tcfg.channels_last:  # NHWC convolutions: about 1.4x faster on CPU here
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.dist.enabled and self.tcfg.get("sync_bn", False):
            self.model = distributed.sync_batch_norm(self.model, self.device)
        self.net = distributed.wrap(self.model, self.dist, self.device)
        self.average = build_average(self.model, self.tcfg.get("ema"), self.tcfg.get("swa"))
        self.accumulate = int(self.tcfg.get("accumulate") or 1)
        if self.accumulate < 1:
            raise ValueError(f"trainer.accumulate must be at least 1, got {self.accumulate}")
        self.optimizer = instantiate(cfg.optimizer)(self.model.parameters())
        self.scheduler = instantiate(cfg.scheduler)(self.optimizer)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.train_set, self.shuffle = build_train_dataset(cfg, self.charset)
        self.val_sets = build_val_datasets(cfg, self.charset)
        self.step = 0
        self.batches_drawn = 0
        self.best = -math.inf
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0
        self.skipped: Counter = Counter()  # samples dropped while loading, by reason
        self.source_counts: Counter = Counter()  # samples trained on, by mixing source
        self._logged_skips: Counter = Counter()
        self._stop_signal: int | None = None
        self._resumed = False
        self._planned = not self.tcfg.get("budget_minutes")
        self._probing = False  # the budget probe's steps, undone afterwards
        self._writer: SummaryWriter | None = None
        params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %.2fM parameters, %s, device %s", params / 1e6, self.charset, self.device)
        if self.dist.enabled:
            log.info(
                "rank %d of %d: global batch %d (%d per rank), lr %s (trainer.scale_lr=%s)",
                self.dist.rank,
                self.dist.world_size,
                cfg.data.batch_size * self.dist.world_size,
                cfg.data.batch_size,
                cfg.optimizer.get("lr"),
                self.tcfg.get("scale_lr", "none"),
            )

    def _scale_lr(self, cfg: DictConfig) -> DictConfig:
        """A copy of ``cfg`` whose optimizer lr follows ``trainer.scale_lr`` for the world size
        (schedules that read ``${optimizer.lr}``, like one-cycle's max_lr, follow it)."""
        rule = self.tcfg.get("scale_lr", "none")
        if "lr" not in cfg.optimizer:
            return cfg
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.optimizer.lr = distributed.scaled_lr(cfg.optimizer.lr, rule, self.dist.world_size)
        self.tcfg = cfg.trainer
        return cfg

    def _check_label_length(self) -> None:
        """Refuse, before training, a data.max_label_length the model cannot emit: a longer
        label reaching the loss mid-epoch would stop the run (or be silently unlearnable)."""
        data = self.cfg.data
        probe = torch.zeros(1, data.channels, data.height, data.width, device=self.device)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            logits = self.model(probe)
        self.model.train(was_training)
        capacity = self.model.head.label_capacity(logits)
        if data.max_label_length > capacity:
            raise ValueError(
                f"data.max_label_length={data.max_label_length} exceeds the {capacity} symbols "
                f"this model can emit for {data.height}x{data.width} images; lower it or widen "
                "the input"
            )

    # ---------------------------------------------------------------- state
    def _amp_dtype(self) -> torch.dtype | None:
        mode = self.tcfg.amp
        if mode is False or mode == "off" or (mode == "auto" and self.device.type != "cuda"):
            return None
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if self.device.type == "cuda" else torch.bfloat16

    @property
    def inference_model(self) -> torch.nn.Module:
        """The weights to validate and read with: the average once it holds a step, else the
        training weights."""
        if self.average is not None and self.average.count > 0:
            return self.average.module
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """``model`` is what evaluate.py and read.py load (the averaged weights when averaging);
        ``raw_model`` and ``averaged_count`` are kept only when averaging is on."""
        state = {
            "model": self.inference_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "max_steps": self.tcfg.max_steps,  # chosen by the budget probe, kept on resume
            "batches_drawn": self.batches_drawn,
            "best": self.best,
            "rng": rng_state(),
            "charset": list(self.charset.symbols),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }
        if self.average is not None:
            state["raw_model"] = self.model.state_dict()
            state["averaged_count"] = self.average.count
        return state

    def load(self, path: str | Path) -> None:
        state = load_checkpoint(path, self.device)
        _load_weights(self.model, state.get("raw_model", state["model"]), path)
        count = int(state.get("averaged_count", 0))
        if self.average is not None:
            self.average.restore(state["model"], count)
            if "raw_model" not in state:
                log.info("%s holds no average: weight averaging starts afresh", path)
        elif "raw_model" in state:
            log.warning(
                "%s holds averaged weights (%d steps) but trainer.ema and trainer.swa are off: "
                "training goes on from its raw weights without an average",
                path,
                count,
            )
        self.optimizer.load_state_dict(state["optimizer"])
        if not self._planned and "max_steps" in state:  # the budget run's plan, not a new one
            self._set_max_steps(int(state["max_steps"]))
            log.info("trainer.budget_minutes: keeping the %d steps planned", self.tcfg.max_steps)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        self.batches_drawn = state["batches_drawn"]
        self.best = state["best"]
        set_rng_state(state["rng"])
        log.info("resumed from %s at step %d", path, self.step)

    def save(self, name: str) -> Path | None:
        """Rank 0 writes (atomically); other ranks hold the same weights and write nothing."""
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.state_dict(), self.output_dir / name)

    def load_weights(self, path: str | Path, modules: list[str] | None = None) -> None:
        """Fine-tuning start: copy ``modules`` (all when empty) of another run's weights.

        Each copied tensor must match this model's shape; the optimizer, schedule and step
        start fresh.
        """
        weights = load_checkpoint(path, self.device)["model"]
        wanted = tuple(f"{m}." for m in modules or ())
        own = self.model.state_dict()
        taken = {k: v for k, v in weights.items() if not wanted or k.startswith(wanted)}
        unknown = sorted(k for k in taken if k not in own)
        wrong = [k for k, v in taken.items() if k in own and own[k].shape != v.shape]
        if not taken or unknown or wrong:
            problem = (
                f"no weights under {list(modules or [])}"
                if not taken
                else f"keys this model lacks: {unknown[:3]}"
                if unknown
                else f"shapes differ for {wrong[:3]}"
            )
            raise RuntimeError(f"init_weights {path}: {problem}")
        missing = [k for k in own if (not wanted or k.startswith(wanted)) and k not in taken]
        if missing:
            raise RuntimeError(f"init_weights {path}: lacks {missing[:3]} of this model")
        self.model.load_state_dict(taken, strict=False)
        log.info(
            "initialised %d of %d tensors (%s) from %s",
            len(taken),
            len(own),
            ", ".join(modules) if modules else "all modules",
            path,
        )

    # ---------------------------------------------------------------- loop
    def resume(self) -> None:
        """Load ``ckpt_path`` (or else ``init_weights``) if set, once; ``fit`` calls it, or
        call it first to separate setup errors (a wrong checkpoint) from training ones."""
        if self._resumed:
            return
        if self.cfg.ckpt_path:
            self.load(self.cfg.ckpt_path)
        elif self.cfg.get("init_weights"):
            self.load_weights(self.cfg.init_weights, list(self.cfg.get("init_modules") or []))
        self._resumed = True

    def _groups(self, loader: Iterable) -> Iterator[list]:
        """The loader's batches in runs of ``trainer.accumulate``: one optimizer step each."""
        batches = iter(loader)
        while group := list(islice(batches, self.accumulate)):
            yield group

    def step_inputs(self, loader: Iterable) -> Iterator[Batch | list[Batch]]:
        """What each ``train_step`` takes, from a loader's non-empty batches: one batch, or
        the ``trainer.accumulate`` batches of one optimizer step."""
        for group in self._groups(batch for batch in loader if batch is not None):
            yield group[0] if len(group) == 1 else group

    def fit(self) -> dict[str, float]:
        self.resume()
        if not self._planned:
            self._plan_budget()
        main = self.dist.is_main
        writer = SummaryWriter(str(self.output_dir / "tensorboard")) if main else None
        self._writer = writer
        if writer is not None:
            self._log_index_drops(writer)
        world = self.dist.world_size
        loader = train_loader(
            self.train_set,
            self.cfg,
            self.charset,
            self.shuffle,
            self.batches_drawn * self.cfg.data.batch_size * world,
            self.dist.rank,
            world,
        )
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        metrics: dict[str, float] = {}
        self.model.train()
        bar = tqdm(
            total=self.tcfg.max_steps,
            initial=self.step,
            desc="train",
            dynamic_ncols=True,
            disable=not main,
        )
        window_start, window_images = time.perf_counter(), 0
        deadline = time.monotonic() + 60 * self.tcfg.max_minutes if self.tcfg.max_minutes else None
        validated_at = self.step
        try:
            for group in self._groups(loader):
                late = deadline is not None and time.monotonic() > deadline
                done = self.step >= self.tcfg.max_steps or self._stop_signal is not None
                # every rank must agree before DDP's collectives: stop, or skip an empty batch
                stop, late, *empty = distributed.any_rank(
                    [done or late, late, *(batch is None for batch in group)],
                    self.dist,
                    self.device,
                )
                if stop:
                    if late:
                        log.warning(
                            "trainer.max_minutes=%s reached at step %d: stopping",
                            self.tcfg.max_minutes,
                            self.step,
                        )
                        if validated_at != self.step:  # score the weights the run ends with
                            metrics = self.validate(writer)
                    break
                self.batches_drawn += len(group)
                for batch in group:
                    if batch is not None:
                        self._account(batch)
                kept = [batch for batch, skip in zip(group, empty, strict=True) if not skip]
                if not kept:
                    continue
                out = self.train_step(kept[0] if len(kept) == 1 else kept)
                window_images += sum(len(batch) for batch in kept) * world
                if out is None:
                    continue
                self.step += 1
                bar.update(1)
                if self.step % self.tcfg.log_every == 0 or self.step == self.tcfg.max_steps:
                    elapsed = time.perf_counter() - window_start
                    speed = window_images / max(elapsed, 1e-9)
                    self._log_train(writer, out, speed, bar)
                    window_start, window_images = time.perf_counter(), 0
                if self.step % self.tcfg.val_every == 0 or self.step == self.tcfg.max_steps:
                    metrics = self.validate(writer)
                    validated_at = self.step
                if self.step % self.tcfg.ckpt_every == 0:
                    self.save("last.ckpt")
        finally:
            bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.save("last.ckpt")
        if writer is not None:
            writer.close()
        if self._stop_signal is not None:
            log.warning(
                "stopped by signal %d at step %d; saved last.ckpt", self._stop_signal, self.step
            )
        else:
            log.info("finished %d steps; checkpoints in %s", self.step, self.output_dir)
        self._log_skips()
        distributed.barrier(self.dist)
        distributed.cleanup(self.dist)
        return metrics

    # ---------------------------------------------------------------- time budget
    def _set_max_steps(self, steps: int) -> None:
        """Fixes the run's length; schedules (one-cycle's total_steps) and mixing fractions
        that follow ``trainer.max_steps`` follow it."""
        self.cfg = copy.deepcopy(self.cfg)
        with open_dict(self.cfg):
            self.cfg.trainer.max_steps = steps
        self.tcfg = self.cfg.trainer
        self.scheduler = instantiate(self.cfg.scheduler)(self.optimizer)
        self._planned = True

    def _plan_budget(self) -> None:
        """Sizes ``max_steps`` to ``trainer.budget_minutes``: a probe of the real pipeline,
        whose updates are then undone, so the run equals ``trainer.max_steps=N`` exactly."""
        tcfg = self.tcfg
        saved = (
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
            copy.deepcopy(self.scaler.state_dict()),
            rng_state(),
            copy.deepcopy(self.average.state_dict()) if self.average is not None else None,
        )
        loader = train_loader(
            self.train_set,
            self.cfg,
            self.charset,
            self.shuffle,
            self.batches_drawn * self.cfg.data.batch_size * self.dist.world_size,
            self.dist.rank,
            self.dist.world_size,
        )
        steps = self.step_inputs(loader)  # whole optimizer steps: trainer.accumulate batches
        self.model.train()
        self._probing = True  # averages every probe step, to time the update
        try:
            costs = budget.measure_costs(
                steps,
                self.train_step,
                self._time_validation,
                lambda: torch.save(self.state_dict(), io.BytesIO()),
                int(tcfg.budget_warmup_steps),
                int(tcfg.budget_probe_steps),
                -(-PREFETCH_FACTOR * self.cfg.data.num_workers // self.accumulate),
            )
        finally:
            self._probing = False
        del steps, loader  # stops the probe's workers
        self.model.load_state_dict(saved[0])
        self.optimizer.load_state_dict(saved[1])
        self.scaler.load_state_dict(saved[2])
        set_rng_state(saved[3])
        if self.average is not None:
            self.average.load_state_dict(saved[4])
        self.nonfinite_in_row = 0
        minutes = float(tcfg.budget_minutes)
        left = 60 * minutes * (1 - float(tcfg.budget_margin))
        left -= time.monotonic() - self._started
        steps = self.step + budget.plan_steps(left, costs, tcfg.val_every, tcfg.ckpt_every)
        steps = distributed.rank0_value(steps, self.dist, self.device)
        self._set_max_steps(steps)
        log.info(
            "trainer.budget_minutes=%s: a step takes %.3f s (%.0f images/s), a validation "
            "%.1f s, a save %.2f s; %.1f s went to setup and the probe -> max_steps=%d",
            tcfg.budget_minutes,
            costs.step,
            self.cfg.data.batch_size * self.dist.world_size / costs.step,
            costs.validation,
            costs.save,
            time.monotonic() - self._started,
            steps,
        )

    def _time_validation(self) -> None:
        """A validation pass as ``_validate`` makes it, without logging or saving."""
        if not self.dist.is_main:
            return
        for dataset in self.val_sets.values():
            self._score(dataset)

    def _score(self, dataset):
        """One validation set read by the weights validation uses; labels were normalised by
        the run's charset when loaded, so they are compared as they are."""
        loader = eval_loader(
            dataset, self.charset, self.cfg.data.batch_size, self.cfg.data.num_workers
        )
        return evaluate_batches(
            self.inference_model,
            loader,
            self.charset,
            self.device,
            protocol="exact",
            keep_images=self.tcfg.val_images,
        )

    def _account(self, batch) -> None:
        """Count what loading this batch skipped (records come from the workers inside the
        batch) and which mixing sources fed it."""
        self.source_counts.update(batch.sources)
        for skip in batch.skipped:
            self.skipped[skip.reason] += 1
            log.debug("skipped %s %s: %s", skip.source, skip.key, skip.reason)

    def _log_index_drops(self, writer: SummaryWriter) -> None:
        """Records dropped while indexing the training LMDBs (bad labels), by reason."""
        datasets = getattr(self.train_set, "sources", [self.train_set])
        dropped: Counter = Counter()
        for dataset in datasets:
            for stats in _index_stats(dataset):
                dropped.update(stats.dropped)
        for reason, count in sorted(dropped.items()):
            writer.add_scalar(f"data/dropped_at_index/{reason}", count, self.step)
        if dropped:
            log.info("training records dropped at indexing: %s", _counts(dropped))

    def _log_skips(self) -> None:
        if self.skipped:
            log.warning("samples skipped while loading (this rank): %s", _counts(self.skipped))

    def _on_signal(self, signum: int, frame) -> None:
        """SIGTERM (what schedulers send) or Ctrl-C: finish the step, save, then stop."""
        self._stop_signal = signum

    def train_step(self, batches: Batch | Sequence[Batch]) -> dict[str, torch.Tensor] | None:
        """One optimizer step on a batch, or on the summed gradients of several (each loss
        scaled by 1 / their number, so k batches of B step as one batch of kB would without
        BatchNorm); the outputs are the batches' mean. Under DDP only the last backward
        all-reduces. None when a non-finite loss or gradient skipped the update."""
        batches = [batches] if isinstance(batches, Batch) else list(batches)
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        self.optimizer.zero_grad(set_to_none=True)
        outs = []
        for i, batch in enumerate(batches):
            batch = batch.to(self.device, non_blocking=True)
            last = i == len(batches) - 1
            with contextlib.nullcontext() if last else distributed.no_sync(self.net):
                with autocast:
                    logits = self.net(batch.images, batch.targets)
                    out = self.model.head.loss(logits, batch.targets, batch.target_lengths)
                loss = out["loss"]
                (nonfinite,) = distributed.any_rank(
                    [not torch.isfinite(loss)], self.dist, self.device
                )
                if nonfinite:
                    self.optimizer.zero_grad(set_to_none=True)
                    return self._skip_nonfinite("loss")
                self.scaler.scale(loss / len(batches) if len(batches) > 1 else loss).backward()
            outs.append(out)
        out = outs[0] if len(outs) == 1 else _mean_outputs(outs)
        self.scaler.unscale_(self.optimizer)
        # after backward the gradients are all-reduced, so every rank sees the same norm
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.tcfg.grad_clip or float("inf")
        )
        if not torch.isfinite(grad_norm) and self.amp_dtype != torch.float16:
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip_nonfinite("gradient")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model, self.step + 1, self.tcfg.max_steps, self._probing)
        self.nonfinite_in_row = 0
        out["grad_norm"] = grad_norm
        return out

    def _skip_nonfinite(self, what: str) -> None:
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        log.warning(
            "non-finite %s at step %d: update skipped (%d in a row)",
            what,
            self.step,
            self.nonfinite_in_row,
        )
        if self.nonfinite_in_row >= self.tcfg.max_nonfinite_in_row:
            self.save("last.ckpt")
            if self._writer is not None:  # the count that stopped the run, not the last logged
                self._writer.add_scalar("train/nonfinite_steps", self.nonfinite_total, self.step)
                self._writer.close()
            raise NonFiniteError(
                f"{self.nonfinite_in_row} non-finite {what}s in a row at step {self.step} "
                f"(trainer.max_nonfinite_in_row={self.tcfg.max_nonfinite_in_row}); the last "
                f"good state is in {self.output_dir / 'last.ckpt'}"
            )
        return None

    def _log_train(self, writer: SummaryWriter | None, out: dict, speed: float, bar: tqdm) -> None:
        skipped = distributed.sum_counts(self.skipped, self.dist)
        sources = distributed.sum_counts(self.source_counts, self.dist)
        if writer is None:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        for name, value in out.items():
            writer.add_scalar(f"train/{name}", float(value.detach()), self.step)
        writer.add_scalar("train/lr", lr, self.step)
        writer.add_scalar("train/images_per_second", speed, self.step)
        writer.add_scalar("train/nonfinite_steps", self.nonfinite_total, self.step)
        writer.add_scalar("data/skipped/total", sum(skipped.values()), self.step)
        for reason, count in skipped.items():
            writer.add_scalar(f"data/skipped/{reason}", count, self.step)
        for name, count in sources.items():
            writer.add_scalar(f"data/source_samples/{name}", count, self.step)
        if skipped != self._logged_skips:
            log.warning("step %d: samples skipped so far: %s", self.step, _counts(skipped))
            self._logged_skips = skipped
        if sources and self.step % (self.tcfg.log_every * 10) == 0:
            log.info("step %d: samples per source: %s", self.step, _counts(sources))
        bar.set_postfix(loss=f"{out['loss'].item():.4f}", img_s=f"{speed:.0f}", lr=f"{lr:.3g}")

    # ---------------------------------------------------------------- validation
    def validate(self, writer: SummaryWriter | None) -> dict[str, float]:
        """Rank 0 validates the bare model while the other ranks wait at a barrier: the sets
        are small, and one process scoring them all gives exactly the single-process numbers."""
        results: dict[str, float] = {}
        if self.dist.is_main:
            results = self._validate(writer)
        distributed.barrier(self.dist)
        return results

    def _validate(self, writer: SummaryWriter) -> dict[str, float]:
        results: dict[str, float] = {}
        monitored = None
        for name, dataset in self.val_sets.items():
            result = self._score(dataset)
            summary = result.totals.summary()
            for metric in VAL_METRICS:
                writer.add_scalar(f"val/{name}/{metric}", summary[metric], self.step)
                results[f"{name}/{metric}"] = summary[metric]
            shown = result.readings[: self.tcfg.val_examples]
            lines = "\n".join(
                f"  {r.truth:>25} | {r.prediction:<25} | {r.confidence:.3f}" for r in shown
            )
            tqdm.write(
                f"[step {self.step}] {name}: word acc {summary['word_accuracy']:.2%}, "
                f"1-NED {summary['one_minus_ned']:.3f}, CR {summary['correct_rate']:.3f}, "
                f"AR {summary['accurate_rate']:.3f} ({summary['samples']} samples)\n"
                f"  {'gt':>25} | {'prediction':<25} | confidence\n{lines}"
            )
            captions = [f"{r.prediction} | {r.truth}" for r in result.readings]
            add_grid(writer, f"val/{name}/images", result.images, captions, self.step)
            for i, image in enumerate(result.images[: self.tcfg.get("val_maps", 0)]):
                # the prediction map over the input (Fig. 5); a 1D model shows a 1 x T strip
                fig = input_map_figure(self.inference_model, self.charset, image)
                writer.add_figure(f"val/{name}/map_{i}", fig, self.step)
            if monitored is None:
                monitored = summary[self.tcfg.monitor]
        if monitored is not None and monitored > self.best:
            self.best = monitored
            self.save("best.ckpt")
            log.info("new best %s %.4f at step %d", self.tcfg.monitor, monitored, self.step)
        writer.flush()
        return results


def _load_weights(module: torch.nn.Module, weights: dict, path: str | Path) -> None:
    """``module.load_state_dict`` with one clear error when the checkpoint does not fit."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise RuntimeError(
            f"checkpoint {path} was trained with another model or charset than this "
            f"config builds: {(lines[1:] or lines)[0][:300]}"
        ) from None


def _mean_outputs(outs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of each output over the micro-batches of an accumulated step (for logging)."""
    return {k: torch.stack([o[k].detach().float() for o in outs]).mean() for k in outs[0]}


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items())) or "none"


def _index_stats(dataset) -> list:
    """SourceStats of an LMDB or labelled-folder dataset, through wrappers (label shuffling,
    augmentation) and concats."""
    if hasattr(dataset, "dataset"):  # ShuffledLabels, AugmentedDataset
        return _index_stats(dataset.dataset)
    if isinstance(dataset, ConcatDataset):
        return [stats for part in dataset.datasets for stats in _index_stats(part)]
    stats = getattr(dataset, "stats", None)
    if stats is None:
        return []
    return stats if isinstance(stats, list) else [stats]
