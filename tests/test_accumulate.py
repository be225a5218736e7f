"""trainer.accumulate: k batches of B step as one batch of kB, counted in optimizer steps."""

import torch

from ace_str.build.checkpoint import load_checkpoint
from ace_str.build.config import compose_config
from ace_str.engine.trainer import Trainer

from .test_distributed import NO_BATCH_NORM
from .test_trainer import interrupt_at, weights


def no_batch_norm(*overrides: str):
    return compose_config("train", ["experiment=crnn_ace", *NO_BATCH_NORM, *overrides])


def test_k_batches_of_b_equal_one_batch_of_kb(tmp_path):
    """Without BatchNorm nothing couples a batch's samples, so summing the gradients of 2
    batches of 4 (each loss halved) gives the weights of batches of 8, to 1e-6. Catches an
    unscaled sum, an optimizer step per micro-batch, or a data position that skips batches."""
    one = Trainer(no_batch_norm("data.batch_size=8"), tmp_path / "one")
    one.fit()
    two = Trainer(no_batch_norm("data.batch_size=4", "trainer.accumulate=2"), tmp_path / "two")
    two.fit()
    assert one.step == two.step == 3
    assert load_checkpoint(tmp_path / "two" / "last.ckpt")["batches_drawn"] == 6
    a, b = weights(one), weights(two)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    assert two.scheduler.last_epoch == 3  # the schedule counts optimizer steps


def test_accumulated_resume_gives_the_same_weights(tiny_config, tmp_path):
    """The data position (batches_drawn, k per step) survives a resume exactly."""
    overrides = ["trainer.max_steps=4", "trainer.accumulate=3"]
    straight = Trainer(tiny_config(*overrides), tmp_path / "straight")
    straight.fit()
    first = Trainer(tiny_config(*overrides), tmp_path / "first")
    interrupt_at(first, 2)
    first.fit()
    ckpt = tmp_path / "first" / "last.ckpt"
    assert load_checkpoint(ckpt)["batches_drawn"] == 6
    resumed = Trainer(tiny_config(*overrides, f"ckpt_path={ckpt}"), tmp_path / "second")
    resumed.fit()
    a, b = weights(straight), weights(resumed)
    for name in a:
        assert torch.equal(a[name], b[name]), name
