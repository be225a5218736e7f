"""The thread count a user sets holds for the whole run, numba's ACE kernels included."""

import subprocess
import sys

import pytest

# A fresh process: numba's pool starts on the first kernel call of a process, and under its
# OpenMP layer that call used to set OpenMP's (so torch's) thread count to numba's default.
PROGRAM = """
import torch
torch.set_num_threads(1)
from ace_str.losses.ace import ACELoss
logits = torch.randn(4, 12, 6, requires_grad=True)
targets, lengths = torch.tensor([[1, 2, 3]] * 4), torch.tensor([3, 2, 1, 3])
ACELoss(backend="{backend}")(logits, targets, lengths).backward()
after_loss = torch.get_num_threads()
torch.set_num_threads(2)
ACELoss(backend="{backend}")(logits, targets, lengths).backward()
print(after_loss, torch.get_num_threads())
"""


@pytest.mark.parametrize("backend", ["auto", "analytic"], ids=["numba-kernel", "pytorch-ops"])
def test_thread_count_set_by_the_user_survives_the_ace_loss(backend):
    """Catches: the numba kernel's first call resetting torch to NUMBA_NUM_THREADS (2 here)."""
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(backend=backend)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert out.stdout.split() == ["1", "2"], out.stderr
