"""Config mistakes end train.py with one ``error:`` line and exit 2, not a deep traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ace_str.engine.checkpoint import save_checkpoint

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, "train.py", *TINY, *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.train_roots=[/no/such/mjsynth]"], "no such folder: /no/such/mjsynth"),
        (["charset=file", "charset.path=/no/such/chars.txt"], "charset file not found"),
        (["ckpt_path=FOREIGN"], "trained with another model or charset"),
    ],
)
def test_config_error_is_one_line(tmp_path: Path, overrides: list[str], message: str) -> None:
    foreign = tmp_path / "foreign.ckpt"
    save_checkpoint({"model": {"other.weight": torch.zeros(2)}}, foreign)
    overrides = [o.replace("FOREIGN", str(foreign)) for o in overrides]
    result = train(tmp_path, "experiment=crnn_ace", *overrides)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_unknown_experiment_names_it(tmp_path: Path) -> None:
    result = train(tmp_path, "experiment=no_such_experiment")
    assert result.returncode != 0
    assert "Could not find 'experiment/no_such_experiment'" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
