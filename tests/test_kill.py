"""A real training process killed at random moments always leaves a loadable last.ckpt that a
resumed run continues from; SIGTERM saves, then exits cleanly."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ace_str.engine.checkpoint import load_checkpoint

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "train.py",
        "experiment=crnn_ace",
        *TINY,
        "trainer.max_steps=100000",
        "trainer.ckpt_every=1",
        "trainer.log_every=1000",
        "data.val_synth_size=0",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, process: subprocess.Popen, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"training exited early with {process.returncode}"
        assert time.monotonic() < deadline, "timed out waiting for the training process"
        time.sleep(0.05)


def log_text(run_dir: Path) -> str:
    path = run_dir / "train.log"
    return path.read_text() if path.is_file() else ""


def test_sigkill_at_random_moments_keeps_a_resumable_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(8)
    previous: Path | None = None
    previous_step = 0
    for round_ in range(4):
        run_dir = tmp_path / f"round{round_}"
        resume = [f"ckpt_path={previous}"] if previous else []
        process = start(run_dir, *resume)
        try:
            ckpt = run_dir / "last.ckpt"
            wait_for(ckpt.is_file, process)
            if previous:
                match = re.search(r"resumed from .* at step (\d+)", log_text(run_dir))
                assert match and int(match.group(1)) == previous_step
            time.sleep(rng.uniform(0.0, 1.0))  # often lands inside a save: one per step
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        state = load_checkpoint(ckpt)  # whole and readable, whenever the kill came
        assert state["step"] >= previous_step + 1
        previous, previous_step = ckpt, state["step"]


def test_sigterm_saves_then_exits(tmp_path: Path) -> None:
    process = start(tmp_path)
    try:
        wait_for((tmp_path / "last.ckpt").is_file, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    match = re.search(r"stopped by signal 15 at step (\d+); saved last.ckpt", log_text(tmp_path))
    assert match, log_text(tmp_path)[-2000:]
    assert load_checkpoint(tmp_path / "last.ckpt")["step"] == int(match.group(1))
