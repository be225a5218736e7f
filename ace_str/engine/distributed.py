"""Data parallelism under torchrun: process group setup, rank facts and small collectives.

torchrun (single or multi node, through its rendezvous) sets RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT; without them the run is a plain single process and every helper is a no-op.
Give multi-process runs a fixed ``hydra.run.dir``: the default folder is named by the second
each process starts, which may differ between ranks (only rank 0's holds checkpoints).

Validation runs on rank 0 alone while the others wait at a barrier: it scores the bare model on
the full sets, so the numbers equal a single-process run's (and need no reduction).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections import Counter
from dataclasses import dataclass

import torch
import torch.distributed as dist
from omegaconf import DictConfig, open_dict
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its global rank, the world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes TensorBoard, validates and saves checkpoints."""
        return self.rank == 0


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group (NCCL on GPUs, Gloo on CPUs) if one is configured.

    Returns the rank facts and the device this rank computes on (``cuda:LOCAL_RANK`` on GPUs).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.info("rank %d of %d joined (%s, %s)", info.rank, world_size, backend, device)
    if not info.is_main:  # one log: other ranks report only warnings (e.g. skipped records)
        logging.getLogger().setLevel(logging.WARNING)
    return info, device


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DistributedDataParallel over ``model`` when several ranks run, else ``model`` itself.

    Keep the bare module for everything but the forward pass (``head``, ``state_dict``): DDP
    would prefix every key with ``module.``.
    """
    if not info.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def no_sync(net: nn.Module) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync`` (gradients kept local, not all-reduced) for the first micro-batches of
    an accumulated step; a no-op for a bare module. The last backward then all-reduces the sum."""
    if isinstance(net, nn.parallel.DistributedDataParallel):
        return net.no_sync()
    return contextlib.nullcontext()


def sync_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm layer turned into SyncBatchNorm (``trainer.sync_bn``).

    Each rank's BatchNorm otherwise normalises with the statistics of its own shard only, so N
    ranks of batch B train differently from one process of batch N x B; SyncBatchNorm computes
    them over the global batch. The layers keep their parameters, buffers and state-dict keys,
    so checkpoints load into plain BatchNorm models. torch runs it on GPUs only.
    """
    if device.type != "cuda":
        raise ValueError(
            f"trainer.sync_bn needs CUDA devices, not {device.type}: torch's SyncBatchNorm does "
            "not run on the CPU (Gloo); leave trainer.sync_bn=false there"
        )
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    layers = sum(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())
    log.info("trainer.sync_bn: %d BatchNorm layers normalise over the global batch", layers)
    return converted


def any_rank(flags: list[bool], info: DistInfo, device: torch.device) -> list[bool]:
    """For each flag, whether it is true on any rank; one tiny all-reduce.

    Every rank must take the same branch before a collective (DDP's forward and backward), so
    decisions like "skip this step" or "stop now" are agreed on, not taken alone.
    """
    if not info.enabled:
        return flags
    tensor = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def rank0_value(value: int, info: DistInfo, device: torch.device) -> int:
    """Rank 0's ``value`` on every rank (a plan all ranks must follow, such as the step count)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value if info.is_main else 0], device=device, dtype=torch.long)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return int(tensor.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def scaled_lr(base_lr: float, rule: str, world_size: int) -> float:
    """The learning rate for a global batch ``world_size`` times the per-rank batch.

    ``linear`` (Goyal et al., 2017) multiplies by the world size, keeping the update per sample
    as in the single-process recipe; ``none`` keeps the configured rate (Adadelta's lr=1.0 of
    the paper is not a step size to scale, for instance).
    """
    if rule == "linear":
        return base_lr * world_size
    if rule == "none":
        return base_lr
    raise ValueError(f"trainer.scale_lr must be 'linear' or 'none', got {rule!r}")


def log_layout(info: DistInfo, cfg: DictConfig) -> None:
    """Under torchrun: this rank's place, the global batch and the (scaled) learning rate."""
    if info.enabled:
        log.info(
            "rank %d of %d: global batch %d (%d per rank), lr %s (trainer.scale_lr=%s)",
            info.rank,
            info.world_size,
            cfg.data.batch_size * info.world_size,
            cfg.data.batch_size,
            cfg.optimizer.get("lr"),
            cfg.trainer.get("scale_lr", "none"),
        )


def scale_lr(cfg: DictConfig, world_size: int) -> DictConfig:
    """A copy of ``cfg`` whose optimizer lr follows ``trainer.scale_lr`` for the world size
    (schedules that read ``${optimizer.lr}``, like one-cycle's max_lr, follow it)."""
    if "lr" not in cfg.optimizer:
        return cfg
    rule = cfg.trainer.get("scale_lr", "none")
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.optimizer.lr = scaled_lr(cfg.optimizer.lr, rule, world_size)
    return cfg


def sum_counts(counts: Counter, info: DistInfo) -> Counter:
    """``counts`` summed over ranks (every rank must call it at the same step)."""
    if not info.enabled:
        return Counter(counts)
    gathered: list[Counter | None] = [None] * info.world_size
    dist.all_gather_object(gathered, dict(counts))
    total: Counter = Counter()
    for part in gathered:
        total.update(part or {})
    return total
