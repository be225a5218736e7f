"""DataLoaders for training (resumable, sharded, mixed by phase) and for reading sets in order."""

from __future__ import annotations

import signal

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from ace_str.data.charset import Charset
from ace_str.data.collate import Collator
from ace_str.data.mixing import MixedDataset
from ace_str.data.sampler import ResumableSampler

PREFETCH_FACTOR = 4  # batches each training worker prepares ahead


def leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """Training workers ignore SIGTERM and SIGINT. A batch scheduler (SLURM at a time limit,
    ``kill -- -PGID``) or Ctrl-C signals the whole process group: a worker killed by it made
    the trainer raise "DataLoader worker ... is killed by signal" before it could finish the
    step and save; the trainer stops the workers itself once last.ckpt is written."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
        worker_init_fn=leave_stop_signals_to_the_trainer,
        # a private generator: creating the iterator must not draw from the global RNG,
        # or a resumed run's dropout would differ from an uninterrupted one
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def eval_loader(
    dataset: Dataset, charset: Charset, batch_size: int, num_workers: int
) -> DataLoader:
    """The dataset in order, labels kept as text (scored against the readings)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=Collator(charset, encode_targets=False),
        pin_memory=torch.cuda.is_available(),
    )
