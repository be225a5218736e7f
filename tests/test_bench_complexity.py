"""scripts/bench_complexity.py end to end on tiny sizes (in a subprocess: it changes malloc's
settings for the rest of its process)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.platform != "linux", reason="the kept-memory pass needs glibc")
def test_bench_complexity_prints_tables_and_both_softmax_ratios():
    args = ["--classes", "5", "600", "--batch", "2", "--frames", "8", "--max-label", "3"]
    args += ["--features", "16", "--hidden", "16", "--repeats", "1", "--warmup", "0"]
    args += ["--ratio-repeats", "3", "--device", "cpu"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_complexity.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for classes in (5, 600):
        assert f"| {classes} classes | Para (MB) | Mem (MB) | Time (ms) |" in out
        line = next(
            x for x in out.splitlines() if x.startswith(f"{classes} classes: ACE / softmax")
        )
        kept, default = re.search(
            r"= ([\d.]+) \(freed memory kept.*glibc defaults ([\d.]+)", line
        ).groups()
        assert math.isfinite(float(kept)) and math.isfinite(float(default))
        assert "page faults per call: softmax" in line and "ACE / CTC time" in line
