"""Config mistakes end every entry point (train.py, evaluate.py, read.py) with one ``error:`` line
on stderr and exit code 2, not a traceback, Hydra's hint or its search-path dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ace_str.build.checkpoint import save_checkpoint
from ace_str.build.config import compose_config
from ace_str.cli import check_experiment
from ace_str.engine.trainer import Trainer
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, script, *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_error_line(result: subprocess.CompletedProcess, message: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr
    assert "search path" not in (result.stderr + result.stdout).lower()
    return errors[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint of a tiny model, for the mistakes that are not about the checkpoint."""
    out = tmp_path_factory.mktemp("ckpt")
    Trainer(
        compose_config("train", ["experiment=crnn_ace", *TINY, "trainer.max_steps=1"]), out
    ).fit()
    return out / "last.ckpt"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.train_roots=[/no/such/mjsynth]"], "no such folder: /no/such/mjsynth"),
        (["charset=file", "charset.path=/no/such/chars.txt"], "charset file not found"),
        (["ckpt_path=FOREIGN"], "trained with another model or charset"),
        (["ckpt_path=/no/such/last.ckpt"], "checkpoint not found: /no/such/last.ckpt"),
    ],
)
def test_train_config_error_is_one_line(tmp_path: Path, overrides: list[str], message: str):
    foreign = tmp_path / "foreign.ckpt"
    save_checkpoint({"model": {"other.weight": torch.zeros(2)}}, foreign)
    overrides = [o.replace("FOREIGN", str(foreign)) for o in overrides]
    result = run("train.py", tmp_path, "experiment=crnn_ace", *TINY, *overrides)
    assert_one_error_line(result, message)


def test_unknown_experiment_lists_the_experiments(tmp_path: Path) -> None:
    result = run("train.py", tmp_path, "experiment=no_such_experiment")
    line = assert_one_error_line(result, "unknown experiment 'no_such_experiment'")
    known = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))
    assert line.endswith(", ".join(known)) and "crnn_ace_quick" in known


@pytest.mark.parametrize("script", ["evaluate.py", "read.py"])
def test_missing_checkpoint_is_one_line(tmp_path: Path, script: str) -> None:
    place = "data.root" if script == "evaluate.py" else "images"
    result = run(script, tmp_path, "checkpoint=/no/such/best.ckpt", f"{place}={tmp_path}")
    assert_one_error_line(result, "checkpoint not found: /no/such/best.ckpt")


@pytest.mark.parametrize(
    ("script", "place", "message"),
    [
        ("evaluate.py", "data.root", "data.root: no such folder: /no/such/benchmarks"),
        ("read.py", "images", "no such image or folder: /no/such/benchmarks"),
    ],
)
def test_missing_data_folder_is_one_line(tmp_path, checkpoint, script, place, message) -> None:
    result = run(script, tmp_path, f"checkpoint={checkpoint}", f"{place}=/no/such/benchmarks")
    assert_one_error_line(result, message)


def test_experiment_check_reads_sweeps_and_leaves_other_config_dirs_to_hydra(capsys) -> None:
    configs = ROOT / "configs"
    check_experiment(["experiment=crnn_ace", "+experiment=crnn_ctc,crnn_attn"], configs)
    check_experiment(["--config-dir=/elsewhere", "experiment=only_there"], configs)
    with pytest.raises(SystemExit) as stop:
        check_experiment(["-m", "++experiment=crnn_ace,nope"], configs)
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: unknown experiment 'nope'; ")
