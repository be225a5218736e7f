"""A real training process killed at random moments always leaves a loadable last.ckpt, and a run
resumed from it ends with the weights of an uninterrupted run; SIGTERM saves, then exits cleanly.

Waits poll for the file a process writes, with a generous overall timeout: process start-up (torch,
Hydra, the font scan) takes seconds on an idle machine and much longer on a busy one.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ace_str.build.checkpoint import load_checkpoint
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300.0  # seconds for any one wait; only ever reached when something is wrong
ENDLESS = 100_000  # max_steps of the runs that get killed: they never finish on their own


def start(
    run_dir: Path, *overrides: str, steps: int = ENDLESS, group: bool = False
) -> subprocess.Popen:
    """The training process; ``group``: in a process group of its own (with its workers)."""
    command = [
        sys.executable,
        "train.py",
        "experiment=crnn_ace",
        *TINY,
        f"trainer.max_steps={steps}",
        "trainer.ckpt_every=1",
        "trainer.log_every=1000",
        "data.val_synth_size=0",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=group,
    )


def wait_for(condition, process: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"training exited early with {process.returncode}"
        assert time.monotonic() < deadline, f"no sign of the training process in {timeout:.0f}s"
        time.sleep(0.05)


def finish(process: subprocess.Popen, run_dir: Path) -> dict[str, torch.Tensor]:
    """Wait for a run to end by itself; its final weights."""
    assert process.wait(timeout=TIMEOUT) == 0, log_text(run_dir)[-2000:]
    return load_checkpoint(run_dir / "last.ckpt")["model"]


def log_text(run_dir: Path) -> str:
    path = run_dir / "train.log"
    return path.read_text() if path.is_file() else ""


def kill_at_a_random_moment(run_dir: Path, previous: Path | None, rng: random.Random) -> Path:
    """Start a run (resumed from ``previous``), SIGKILL it once it has saved; its last.ckpt."""
    process = start(run_dir, *([f"ckpt_path={previous}"] if previous else []))
    ckpt = run_dir / "last.ckpt"
    try:
        wait_for(ckpt.is_file, process)
        time.sleep(rng.uniform(0.0, 1.0))  # often lands inside a save: one per step
        assert process.poll() is None, "the endless run stopped by itself"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return ckpt


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_weights(tmp_path: Path):
    """Catches a checkpoint that loads and has the right step but does not hold the state the
    step reached, e.g. a data position counted after the periodic save (a resumed run then
    trains on one batch twice): only the final weights show it. Also a save that a kill can
    cut short, since every checkpoint below is read back after a real SIGKILL."""
    rng = random.Random(8)
    kills: list[tuple[Path, int]] = []
    previous_step = 0
    for round_ in range(3):
        run_dir = tmp_path / f"killed{round_}"
        previous = kills[-1][0] if kills else None
        ckpt = kill_at_a_random_moment(run_dir, previous, rng)
        if previous:
            match = re.search(r"resumed from .* at step (\d+)", log_text(run_dir))
            assert match and int(match.group(1)) == previous_step
        state = load_checkpoint(ckpt)  # whole and readable, whenever the kill came
        assert state["step"] >= previous_step + 1
        previous_step = state["step"]
        kills.append((ckpt, previous_step))

    # Every kill resumed to one end, beside an uninterrupted run to it (max_steps changes
    # nothing but the end: Adadelta, constant schedule, no validation).
    end = previous_step + 3
    reference = start(tmp_path / "straight", steps=end)
    resumed = [
        start(tmp_path / f"resumed{i}", f"ckpt_path={ckpt}", steps=end)
        for i, (ckpt, _) in enumerate(kills)
    ]
    try:
        expected = finish(reference, tmp_path / "straight")
        for i, process in enumerate(resumed):
            got = finish(process, tmp_path / f"resumed{i}")
            assert got.keys() == expected.keys()
            for name, tensor in expected.items():
                assert torch.equal(got[name], tensor), f"resumed from step {kills[i][1]}: {name}"
    finally:
        for process in (reference, *resumed):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert load_checkpoint(tmp_path / "straight" / "last.ckpt")["step"] == end


def test_sigterm_saves_then_exits(tmp_path: Path) -> None:
    process = start(tmp_path)
    try:
        wait_for((tmp_path / "last.ckpt").is_file, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
    match = re.search(r"stopped by signal 15 at step (\d+); saved last.ckpt", log_text(tmp_path))
    assert match, log_text(tmp_path)[-2000:]
    assert load_checkpoint(tmp_path / "last.ckpt")["step"] == int(match.group(1))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_whole_process_group_saves_then_exits(tmp_path: Path, signum) -> None:
    """SLURM at a time limit, ``kill -- -PGID`` and Ctrl-C signal the rendering workers too; a
    worker killed by it made the trainer raise ("DataLoader worker ... is killed by signal")
    instead of finishing the step and saving."""
    process = start(tmp_path, "data.num_workers=1", group=True)
    try:
        wait_for((tmp_path / "last.ckpt").is_file, process)
        os.killpg(process.pid, signum)
        assert process.wait(timeout=TIMEOUT) == 0, log_text(tmp_path)[-2000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    pattern = rf"stopped by signal {int(signum)} at step (\d+); saved last.ckpt"
    match = re.search(pattern, log_text(tmp_path))
    assert match, log_text(tmp_path)[-2000:]
    assert load_checkpoint(tmp_path / "last.ckpt")["step"] == int(match.group(1))
