"""Two CPU ranks (Gloo) train one tiny model: replicas stay identical, shards differ, loss falls."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from ace_str.data.sampler import ResumableSampler
from ace_str.engine.distributed import scaled_lr

from .conftest import TINY, compose_config

STEPS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    from ace_str.engine.trainer import Trainer

    cfg = compose_config(
        "train",
        [
            "experiment=crnn_ace",
            *TINY,
            "optimizer=adamw",
            "optimizer.lr=3e-3",
            "trainer.scale_lr=linear",
            f"trainer.max_steps={STEPS}",
            "trainer.val_every=1000",
            "data.batch_size=8",
        ],
    )
    trainer = Trainer(cfg, Path(out) / "run")
    losses: list[float] = []
    texts: list[str] = []
    step = trainer.train_step

    def recording(batch):
        texts.extend(batch.texts)
        result = step(batch)
        losses.append(float(result["loss"].detach()) if result else float("nan"))
        return result

    trainer.train_step = recording
    trainer.fit()
    torch.save(
        {
            # parameters; BN running stats are rank 0's, broadcast at each forward by DDP
            "weights": dict(trainer.model.named_parameters()),
            "losses": losses,
            "texts": texts,
            "lr": trainer.optimizer.param_groups[0]["initial_lr"],
        },
        Path(out) / f"rank{rank}.pt",
    )


def test_two_gloo_ranks_stay_in_sync_and_learn(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    for name, tensor in a["weights"].items():
        assert torch.equal(tensor, b["weights"][name]), name
    assert a["texts"] != b["texts"]  # each rank reads its own shard
    losses = a["losses"]
    assert len(losses) == STEPS
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses
    assert a["lr"] == 6e-3  # linear scaling for 2 ranks
    saved = sorted(p.name for p in (tmp_path / "run").iterdir() if p.is_file())
    assert saved == ["best.ckpt", "last.ckpt"]  # from rank 0's final validation and save
    state = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    assert state["step"] == STEPS and not any(k.startswith("module.") for k in state["model"])


def test_sampler_shards_partition_the_stream() -> None:
    full = ResumableSampler(10, seed=3, shuffle=True, start=4)
    stream = [i for i, _ in zip(full, range(12), strict=False)]
    shards = [
        [i for i, _ in zip(ResumableSampler(10, 3, True, 4, r, 2), range(6), strict=False)]
        for r in range(2)
    ]
    assert shards[0] == stream[0::2] and shards[1] == stream[1::2]


def test_lr_rules() -> None:
    assert scaled_lr(1e-3, "linear", 4) == 4e-3 and scaled_lr(1.0, "none", 4) == 1.0
