"""Two CPU ranks (Gloo) train one tiny model: replicas stay identical, shards differ, loss falls,
and two ranks of batch B end where one process of batch 2B does."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from ace_str.build.config import compose_config
from ace_str.data.sampler import ResumableSampler
from ace_str.engine.distributed import scaled_lr, sync_batch_norm
from tests.conftest import TINY

STEPS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _join(rank: int, world_size: int, port: int) -> None:
    """The environment torchrun gives each rank."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )


def _rank(rank: int, world_size: int, port: int, out: str) -> None:
    _join(rank, world_size, port)
    from ace_str.engine.trainer import Trainer

    cfg = compose_config(
        "train",
        [
            "experiment=crnn_ace",
            *TINY,
            "head.blank_prior=null",  # from torch's init, so 16 steps show the loss falling
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


# A model without BatchNorm (the HCTR layout, tiny, batch_norm off): nothing couples the samples
# of a batch, so only the gradient average over ranks decides whether DDP matches one process.
NO_BATCH_NORM = [
    *(o for o in TINY if not o.startswith(("model.", "data.batch_size="))),
    "model=hctr",
    "model.backbone.channels=[4,4,4,8,8,8,8,8,8,8,8]",
    "model.backbone.lstm_layers=1",
    "model.backbone.batch_norm=false",
    "data.height=64",
    "data.width=128",  # 15 frames
    "data.max_label_length=14",
    "data.val_synth_size=0",
    "optimizer=adadelta",  # lr 1.0, trainer.scale_lr=none: the same rate for both
    "trainer.max_steps=3",
]
# The tiny CRNN (BatchNorm on three convolutions) with SyncBatchNorm under DDP.
SYNC_BATCH_NORM = [
    *(o for o in TINY if not o.startswith("data.batch_size=")),
    "data.val_synth_size=0",
    "optimizer=adadelta",
    "trainer.max_steps=3",
    "trainer.sync_bn=true",
    "trainer.amp=off",  # float32 on both sides
    "device=cuda",
]


def _rank_weights(rank: int, world_size: int, port: int, out: str, overrides: list[str]) -> None:
    _join(rank, world_size, port)
    from ace_str.engine.trainer import Trainer

    trainer = Trainer(compose_config("train", overrides), Path(out) / "run")
    trainer.fit()
    state = {k: v.cpu() for k, v in trainer.model.state_dict().items()}
    torch.save(state, Path(out) / f"rank{rank}.pt")


def two_ranks_and_one_process(tmp_path: Path, overrides: list[str], batch: int):
    """Final weights of two ranks of ``batch`` each, and of one process of ``2 * batch``, and
    the weights all of them started from."""
    from ace_str.engine.trainer import Trainer

    ranked = [*overrides, f"data.batch_size={batch}"]
    mp.spawn(_rank_weights, args=(2, free_port(), str(tmp_path), ranked), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = Trainer(
        compose_config("train", [*overrides, f"data.batch_size={2 * batch}"]), tmp_path / "one"
    )
    start = {k: v.detach().clone().cpu() for k, v in single.model.state_dict().items()}
    single.fit()
    return ranks, {k: v.cpu() for k, v in single.model.state_dict().items()}, start


def assert_same_training(ranks, single, start, atol: float = 1e-6) -> None:
    for name, tensor in ranks[0].items():
        assert torch.equal(tensor, ranks[1][name]), name  # replicas stay identical
    moved = max((single[k].float() - start[k].float()).abs().max().item() for k in start)
    assert moved > 100 * atol  # three steps changed the weights far beyond the tolerance
    for name, tensor in single.items():
        # the same samples, their gradients summed in another order: equal up to rounding
        torch.testing.assert_close(
            ranks[0][name], tensor, rtol=10 * atol, atol=atol, msg=lambda m, n=name: f"{n}: {m}"
        )


def test_two_ranks_of_batch_b_equal_one_process_of_batch_2b(tmp_path: Path) -> None:
    """Catches ranks that read overlapping or wrong shards, a gradient summed instead of
    averaged, a learning rate scaled where it should not be: any of them moves the weights
    away from the single process's, which sees the same 2B samples each step."""
    ranks, single, start = two_ranks_and_one_process(tmp_path, NO_BATCH_NORM, batch=4)
    assert not any("norm" in name or "running" in name for name in single)  # no BatchNorm
    assert_same_training(ranks, single, start)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="SyncBatchNorm needs two CUDA devices")
def test_sync_bn_ranks_of_batch_b_equal_one_process_of_batch_2b(tmp_path: Path) -> None:
    """Catches BatchNorm statistics taken per rank under trainer.sync_bn (the running stats and
    the normalised activations of B samples differ from those of 2B)."""
    ranks, single, start = two_ranks_and_one_process(tmp_path, SYNC_BATCH_NORM, batch=4)
    assert any(name.endswith("running_var") for name in single)
    # cuDNN convolutions may round through TF32: a looser bound, still far below what per-rank
    # statistics (of 4 samples instead of 8) change
    assert_same_training(ranks, single, start, atol=1e-5)


def test_sync_bn_converts_every_batch_norm_and_keeps_the_checkpoint_keys() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(4)))
    keys = list(model.state_dict())
    converted = sync_batch_norm(model, torch.device("cuda", 0))  # converting needs no GPU
    kinds = [type(m) for m in converted.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    assert kinds == [nn.SyncBatchNorm, nn.SyncBatchNorm]
    assert list(converted.state_dict()) == keys
    with pytest.raises(ValueError, match="trainer.sync_bn needs CUDA devices"):
        sync_batch_norm(model, torch.device("cpu"))


def test_sync_bn_leaves_a_single_process_alone(tiny_config, tmp_path: Path) -> None:
    """One process already normalises over its whole batch: the switch changes nothing there
    (and raises nothing on the CPU)."""
    from ace_str.engine.trainer import Trainer

    trainer = Trainer(tiny_config("trainer.sync_bn=true"), tmp_path)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in trainer.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in trainer.model.modules())
