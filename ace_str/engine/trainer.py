"""The training loop: steps, validation, checkpoints; it never asks which head it trains.

Its helpers: checkpointing.py, validation.py, progress.py (bar, TensorBoard), accounting.py
(skips, non-finite updates), precision.py (AMP), budget.py (the time budget's probe).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import random
import signal
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from ace_str.build.data import build_train_dataset, build_val_datasets
from ace_str.build.loaders import train_loader
from ace_str.build.models import build_charset, build_model, resolve_device
from ace_str.data.collate import Batch
from ace_str.data.drops import dropped_at_index
from ace_str.data.mixing import MixedDataset
from ace_str.engine import budget, distributed
from ace_str.engine.accounting import LOSS_SKIPS, Accounting
from ace_str.engine.averaging import build_average
from ace_str.engine.checkpointing import Checkpoints
from ace_str.engine.precision import MixedPrecision
from ace_str.engine.progress import ProgressLog
from ace_str.engine.validation import Validation

log = logging.getLogger(__name__)

# On the CPU (torch 2.14, oneDNN), the backward pass of ResNet FCNs in NHWC crashed the process
# (segfault, abort) with stages of 4 and 8 channels and never with 16 or more (the 2D recipes).
NHWC_MIN_CPU_CHANNELS = 16


def nhwc_trains_safely(model: torch.nn.Module, device: torch.device) -> bool:
    """False (and a warning) where trainer.channels_last would risk that crash: a CPU run with
    a convolution narrower than NHWC_MIN_CPU_CHANNELS outputs; such a model trains in NCHW."""
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if device.type != "cpu" or not widths or min(widths) >= NHWC_MIN_CPU_CHANNELS:
        return True
    log.warning(
        "trainer.channels_last ignored: a convolution of %d output channels (NHWC backward "
        "crashed on the CPU below %d); training in NCHW",
        min(widths),
        NHWC_MIN_CPU_CHANNELS,
    )
    return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


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
        self.started_at = time.monotonic()  # trainer.budget_minutes counts from here
        self.cfg, self.tcfg = cfg, cfg.trainer
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints = Checkpoints(self)
        if self.tcfg.num_threads:
            torch.set_num_threads(self.tcfg.num_threads)
        seed_everything(cfg.seed)
        self.dist, self.device = distributed.setup(resolve_device(cfg.device))
        if self.dist.enabled:
            self.cfg = cfg = distributed.scale_lr(cfg, self.dist.world_size)
            self.tcfg = cfg.trainer
        self.charset = build_charset(cfg)
        self.model = build_model(cfg, self.charset).to(self.device)
        self._check_label_length()
        if self.tcfg.channels_last and nhwc_trains_safely(self.model, self.device):
            # NHWC convolutions: about 1.4x faster on CPU here
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
        self.precision = MixedPrecision(self.tcfg.amp, self.device)
        self.train_set, self.shuffle = build_train_dataset(cfg, self.charset)
        self.validation = Validation(
            build_val_datasets(cfg, self.charset),
            self.charset,
            self.device,
            cfg.data.batch_size,
            cfg.data.num_workers,
            self.tcfg.val_images,
        )
        self.accounting = Accounting(self.tcfg.max_nonfinite_in_row)
        self.progress: ProgressLog | None = None  # opened by fit
        self.step = 0
        self.batches_drawn = 0
        self.best = -math.inf
        self.planned = not self.tcfg.get("budget_minutes")
        self.budget_plan: budget.Plan | None = None  # set by budget.plan, re-timed by checks
        self.probing = False  # the budget probe's steps, undone afterwards
        self._stop_signal: int | None = None
        self._reload = False  # rebuild the training loader (see _train_groups)
        params = sum(p.numel() for p in self.model.parameters())
        log.info("model: %.2fM parameters, %s, device %s", params / 1e6, self.charset, self.device)
        distributed.log_layout(self.dist, cfg)

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

    @property
    def inference_model(self) -> torch.nn.Module:
        """The weights to validate and read with: the average once it holds a step, else the
        training weights."""
        if self.average is not None and self.average.count > 0:
            return self.average.module
        return self.model

    @property
    def skipped(self) -> Counter:
        """Samples this rank skipped while loading, by reason."""
        return self.accounting.skipped

    @property
    def source_counts(self) -> Counter:
        """Samples this rank trained on, by mixing source."""
        return self.accounting.source_counts

    @property
    def nonfinite_total(self) -> int:
        return self.accounting.nonfinite_total

    @property
    def interrupted(self) -> bool:
        """Whether a signal (SIGTERM, SIGINT) stopped ``fit`` before its last step."""
        return self._stop_signal is not None

    def resume(self) -> None:
        """Load ``ckpt_path`` (or else ``init_weights``) if set, once; ``fit`` calls it, or
        call it first to separate setup errors (a wrong checkpoint) from training ones."""
        self.checkpoints.resume()

    def set_max_steps(self, steps: int) -> None:
        """Fixes the run's length; schedules (one-cycle's total_steps) and mixing fractions
        that follow ``trainer.max_steps`` follow it. Mid-run (a budget check), the new
        schedule takes over at the current step: the rate is the new schedule's there."""
        self.cfg = copy.deepcopy(self.cfg)
        with open_dict(self.cfg):
            self.cfg.trainer.max_steps = steps
        self.tcfg = self.cfg.trainer
        self.scheduler = instantiate(self.cfg.scheduler)(self.optimizer)
        if self.step:
            self.scheduler.last_epoch = self.step - 1
            with warnings.catch_warnings():  # "step() before optimizer.step()": no update here
                warnings.simplefilter("ignore", UserWarning)
                self.scheduler.step()
        if self.progress is not None:
            self.progress.set_total(steps)
        self.planned = True

    def _groups(self, loader: Iterable) -> Iterator[list]:
        """The loader's batches in runs of ``trainer.accumulate``: one optimizer step each."""
        batches = iter(loader)
        while group := list(islice(batches, self.accumulate)):
            yield group

    def _train_groups(self) -> Iterator[list]:
        """The training loader's optimizer steps; when ``_reload`` is set (a budget check moved
        where a source joins), the loader is rebuilt at the data position, as on resume."""
        world = self.dist.world_size
        while True:
            start = self.batches_drawn * self.cfg.data.batch_size * world
            loader = train_loader(
                self.train_set, self.cfg, self.charset, self.shuffle, start, self.dist.rank, world
            )
            self._reload = False
            for group in self._groups(loader):
                yield group
                if self._reload:
                    break
            else:
                return
            del loader  # stops its workers before the next one starts

    def _data_follows_steps(self, before: int, after: int) -> bool:
        """Whether the batches depend on the run's length: sources joining or leaving at a
        fraction of it, placed differently for ``after`` steps than for ``before``."""
        data = self.train_set
        if not isinstance(data, MixedDataset):
            return False
        return (data.starts(before), data.stops(before)) != (data.starts(after), data.stops(after))

    def step_inputs(self, loader: Iterable) -> Iterator[Batch | list[Batch]]:
        """What each ``train_step`` takes, from a loader's non-empty batches: one batch, or
        the ``trainer.accumulate`` batches of one optimizer step."""
        for group in self._groups(batch for batch in loader if batch is not None):
            yield group[0] if len(group) == 1 else group

    def fit(self) -> dict[str, float]:
        self.resume()
        if not self.planned:
            budget.plan(self)
        tcfg, world = self.tcfg, self.dist.world_size
        progress = self.progress = ProgressLog(
            self.output_dir / "tensorboard",
            self.dist.is_main,
            tcfg.max_steps,
            self.step,
            tcfg.val_examples,
            tcfg.get("val_maps", 0),
        )
        progress.index_drops(dropped_at_index(self.train_set), self.step)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        metrics: dict[str, float] = {}
        self.model.train()
        deadline = time.monotonic() + 60 * tcfg.max_minutes if tcfg.max_minutes else None
        validated_at = self.step
        try:
            for group in self._train_groups():
                late = deadline is not None and time.monotonic() > deadline
                done = self.step >= tcfg.max_steps or self._stop_signal is not None
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
                            tcfg.max_minutes,
                            self.step,
                        )
                        if validated_at != self.step:  # score the weights the run ends with
                            metrics = self.validate()
                    break
                self.batches_drawn += len(group)
                for batch in group:
                    if batch is not None:
                        self.accounting.add(batch)
                kept = [batch for batch, skip in zip(group, empty, strict=True) if not skip]
                if not kept:
                    continue
                out = self.train_step(kept[0] if len(kept) == 1 else kept)
                progress.count_images(sum(len(batch) for batch in kept) * world)
                if out is None:
                    continue
                self.step += 1
                progress.advance()
                if self.step % tcfg.log_every == 0 or self.step == tcfg.max_steps:
                    skipped, sources = self.accounting.totals(self.dist)
                    lr = self.optimizer.param_groups[0]["lr"]
                    nonfinite = self.accounting.nonfinite_total
                    progress.train(
                        self.step, out, lr, skipped, sources, nonfinite, tcfg.log_every * 10
                    )
                if self.step % tcfg.val_every == 0 or self.step == tcfg.max_steps:
                    metrics = self.validate()
                    validated_at = self.step
                if self.step % tcfg.ckpt_every == 0:
                    self.checkpoints.save("last.ckpt")
                if self.budget_plan is not None and self.budget_plan.due(self.step, tcfg.max_steps):
                    before = tcfg.max_steps
                    if budget.replan(self):
                        tcfg = self.tcfg
                        self._reload = self._data_follows_steps(before, tcfg.max_steps)
        finally:
            progress.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.checkpoints.save("last.ckpt")
        if self._stop_signal is not None:
            log.warning(
                "stopped by signal %d at step %d; saved last.ckpt", self._stop_signal, self.step
            )
        else:
            log.info("finished %d steps; checkpoints in %s", self.step, self.output_dir)
        self.accounting.log_skips()
        distributed.barrier(self.dist)
        distributed.cleanup(self.dist)
        return metrics

    def _on_signal(self, signum: int, frame) -> None:
        """SIGTERM (what schedulers send) or Ctrl-C: finish the step, save, then stop."""
        self._stop_signal = signum

    def train_step(self, batches: Batch | Sequence[Batch]) -> dict[str, torch.Tensor] | None:
        """One optimizer step on a batch, or on the summed gradients of several (each loss
        scaled by 1 / their number, so k batches of B step as one batch of kB would without
        BatchNorm); the outputs are the batches' mean. Under DDP only the last backward
        all-reduces. None when a non-finite loss or gradient skipped the update."""
        batches = [batches] if isinstance(batches, Batch) else list(batches)
        scaler = self.precision.scaler
        self.optimizer.zero_grad(set_to_none=True)
        outs = []
        for i, batch in enumerate(batches):
            batch = batch.to(self.device, non_blocking=True)
            last = i == len(batches) - 1
            with contextlib.nullcontext() if last else distributed.no_sync(self.net):
                with self.precision.autocast():
                    logits = self.net(batch.images, batch.targets)
                    out = self.model.head.loss(logits, batch.targets, batch.target_lengths)
                loss = out["loss"]
                (nonfinite,) = distributed.any_rank(
                    [not torch.isfinite(loss)], self.dist, self.device
                )
                if nonfinite:
                    self.optimizer.zero_grad(set_to_none=True)
                    return self._skip_nonfinite("loss")
                scaler.scale(loss / len(batches) if len(batches) > 1 else loss).backward()
            outs.append(out)
        self.accounting.add_loss_skips(outs)
        out = outs[0] if len(outs) == 1 else _mean_outputs(outs)
        scaler.unscale_(self.optimizer)
        # after backward the gradients are all-reduced, so every rank sees the same norm
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.tcfg.grad_clip or float("inf")
        )
        if not torch.isfinite(grad_norm) and self.precision.dtype != torch.float16:
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip_nonfinite("gradient")
        scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model, self.step + 1, self.tcfg.max_steps, self.probing)
        self.accounting.finite()
        out["grad_norm"] = grad_norm
        return out

    def _skip_nonfinite(self, what: str) -> None:
        """Count a skipped update; too many in a row save last.ckpt and stop the run."""
        if not self.accounting.nonfinite(what, self.step):
            return None
        self.checkpoints.save("last.ckpt")
        if self.progress is not None:
            self.progress.nonfinite_stop(self.accounting.nonfinite_total, self.step)
        raise NonFiniteError(
            f"{self.accounting.nonfinite_in_row} non-finite {what}s in a row at step {self.step} "
            f"(trainer.max_nonfinite_in_row={self.tcfg.max_nonfinite_in_row}); the last "
            f"good state is in {self.output_dir / 'last.ckpt'}"
        )

    def validate(self) -> dict[str, float]:
        """Rank 0 validates while the other ranks wait at a barrier: the sets are small, and
        one process scoring them all gives exactly the single-process numbers. The first
        set's ``trainer.monitor`` picks best.ckpt."""
        results: dict[str, float] = {}
        if self.dist.is_main and self.progress is not None:
            model, monitored = self.inference_model, None
            for name, result in self.validation.scores(model):
                results |= self.progress.validation(name, result, self.step, model, self.charset)
                if monitored is None:
                    monitored = result.totals.summary()[self.tcfg.monitor]
            if monitored is not None:
                self.checkpoints.keep_best(monitored, self.tcfg.monitor)
            self.progress.flush()
        distributed.barrier(self.dist)
        return results


def _mean_outputs(outs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Each output over the micro-batches of an accumulated step (for logging): the mean,
    except counts of skipped samples, which add up."""
    counted = set(LOSS_SKIPS.values())
    return {
        k: (torch.sum if k in counted else torch.mean)(
            torch.stack([o[k].detach().float() for o in outs])
        )
        for k in outs[0]
    }
