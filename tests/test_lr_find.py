"""scripts/lr_find.py: the range test grows the rate exponentially, stops on divergence, and
suggests the rate of steepest descent."""

import math

import pytest

from ace_str.engine.lr_find import LrPoint, lr_range_test, suggest_lr
from tests.conftest import TINY, load_script


def test_suggestion_is_the_steepest_descent() -> None:
    """A loss that falls fastest around 1e-2 (a tanh in log lr) gives a rate near 1e-2."""
    lrs = [10 ** (-5 + 5 * i / 50) for i in range(51)]
    losses = [2 - math.tanh(2 * (math.log10(lr) + 2)) for lr in lrs]
    suggested = suggest_lr([LrPoint(lr, loss, loss) for lr, loss in zip(lrs, losses, strict=True)])
    assert 10**-2.2 <= suggested <= 10**-1.8


class FakeTrainer:
    """A loss that doubles each step after the fifth: the test must stop there."""

    def __init__(self) -> None:
        import torch

        self.model = torch.nn.Linear(1, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1.0)
        self.calls = 0

    def train_step(self, batch):
        import torch

        self.calls += 1
        self.scheduler.step()
        return {"loss": torch.tensor(1.0 if self.calls <= 5 else 2.0**self.calls)}


def test_range_test_is_exponential_and_stops_on_divergence() -> None:
    trainer = FakeTrainer()
    points = lr_range_test(trainer, iter(range(100)), 1e-4, 1.0, 5, smoothing=0.0)
    assert [p.lr for p in points] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    trainer = FakeTrainer()
    points = lr_range_test(trainer, iter(range(100)), 1e-4, 1.0, 50, smoothing=0.0)
    assert trainer.calls == len(points) == 6  # 2**6 > 4 x the best loss of 1


def test_script_prints_the_table_and_plots(tmp_path, capsys) -> None:
    out = tmp_path / "lr.png"
    args = ["experiment=crnn_ace", *TINY, "--steps", "8", "--min-lr", "1e-3", "--out", str(out)]
    load_script("lr_find").main(args)
    printed = capsys.readouterr().out
    assert "| lr (crnn_ace) | loss | smoothed loss |" in printed
    assert "suggested lr (steepest descent):" in printed
    assert out.is_file() and out.stat().st_size > 0
