"""A run's checkpoints: what they hold, resuming from one, fine-tuning from another's weights,
and keeping the best. Files are written atomically and read weights-only (build/checkpoint.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf

from ace_str.build.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

if TYPE_CHECKING:
    from ace_str.engine.trainer import Trainer

log = logging.getLogger(__name__)


class Checkpoints:
    """``last.ckpt`` and ``best.ckpt`` of one trainer, under its ``output_dir``.

    Rank 0 alone writes; the other ranks hold the same weights. Temporaries that a save cut
    short by SIGKILL left behind are removed when the run starts.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.folder = trainer.output_dir
        for stale in self.folder.glob(".*.ckpt.*.tmp"):
            stale.unlink(missing_ok=True)
        self.resumed = False

    def state_dict(self) -> dict[str, Any]:
        """``model`` is what evaluate.py and read.py load (the averaged weights when averaging);
        ``raw_model`` and ``averaged_count`` are kept only when averaging is on."""
        t = self.trainer
        state = {
            "model": t.inference_model.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(),
            "scaler": t.precision.scaler.state_dict(),
            "step": t.step,
            "max_steps": t.tcfg.max_steps,  # chosen by the budget probe, kept on resume
            "batches_drawn": t.batches_drawn,
            "best": t.best,
            "rng": rng_state(),
            "charset": list(t.charset.symbols),
            "config": OmegaConf.to_container(t.cfg, resolve=True),
        }
        if t.average is not None:
            state["raw_model"] = t.model.state_dict()
            state["averaged_count"] = t.average.count
        return state

    def save(self, name: str) -> Path | None:
        if not self.trainer.dist.is_main:
            return None
        return save_checkpoint(self.state_dict(), self.folder / name)

    def keep_best(self, value: float, monitor: str) -> None:
        """Save ``best.ckpt`` when ``value`` of ``monitor`` beats every earlier validation."""
        t = self.trainer
        if value > t.best:
            t.best = value
            self.save("best.ckpt")
            log.info("new best %s %.4f at step %d", monitor, value, t.step)

    def load(self, path: str | Path) -> None:
        """Go on from a checkpoint of this run: weights, average, optimizer, schedule, step,
        data position and random state; a budget run keeps the steps it planned."""
        t = self.trainer
        state = load_checkpoint(path, t.device)
        _load_strict(t.model, state.get("raw_model", state["model"]), path)
        count = int(state.get("averaged_count", 0))
        if t.average is not None:
            t.average.restore(state["model"], count)
            if "raw_model" not in state:
                log.info("%s holds no average: weight averaging starts afresh", path)
        elif "raw_model" in state:
            log.warning(
                "%s holds averaged weights (%d steps) but trainer.ema and trainer.swa are off: "
                "training goes on from its raw weights without an average",
                path,
                count,
            )
        if not t.planned and "max_steps" in state:  # the budget run's plan, not a new one
            # before the optimizer's state: a new schedule sets its first step's rate
            t.set_max_steps(int(state["max_steps"]))
            log.info("trainer.budget_minutes: keeping the %d steps planned", t.tcfg.max_steps)
        t.optimizer.load_state_dict(state["optimizer"])
        t.scheduler.load_state_dict(state["scheduler"])
        t.precision.scaler.load_state_dict(state["scaler"])
        t.step = state["step"]
        t.batches_drawn = state["batches_drawn"]
        t.best = state["best"]
        set_rng_state(state["rng"])
        log.info("resumed from %s at step %d", path, t.step)

    def resume(self) -> None:
        """Load ``ckpt_path`` (or else ``init_weights``) if set, once."""
        if self.resumed:
            return
        cfg = self.trainer.cfg
        if cfg.ckpt_path:
            self.load(cfg.ckpt_path)
        elif cfg.get("init_weights"):
            modules = list(cfg.get("init_modules") or [])
            load_weights(self.trainer.model, cfg.init_weights, modules, self.trainer.device)
        self.resumed = True


def load_weights(
    model: torch.nn.Module,
    path: str | Path,
    modules: list[str] | None = None,
    device: torch.device | str = "cpu",
) -> None:
    """Fine-tuning start: copy ``modules`` (all when empty) of another run's weights.

    Each copied tensor must match this model's shape; the optimizer, schedule and step
    start fresh.
    """
    weights = load_checkpoint(path, device)["model"]
    wanted = tuple(f"{m}." for m in modules or ())
    own = model.state_dict()
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
    model.load_state_dict(taken, strict=False)
    log.info(
        "initialised %d of %d tensors (%s) from %s",
        len(taken),
        len(own),
        ", ".join(modules) if modules else "all modules",
        path,
    )


def _load_strict(module: torch.nn.Module, weights: dict, path: str | Path) -> None:
    """``module.load_state_dict`` with one clear error when the checkpoint does not fit."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise RuntimeError(
            f"checkpoint {path} was trained with another model or charset than this "
            f"config builds: {(lines[1:] or lines)[0][:300]}"
        ) from None
