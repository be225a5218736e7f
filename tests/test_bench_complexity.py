"""scripts/bench_complexity.py end to end on tiny sizes (in a subprocess: it changes malloc's
settings for the rest of its process)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def attention_parameters_mb(classes: int, features: int, hidden: int) -> float:
    """The clovaai attention head's size written out (4-byte floats): feature projection D x H,
    hidden projection H x H + H, score H, LSTM cell over the features and the one-hot previous
    token ([EOS], the C - 1 symbols, [GO]: C + 1 of them) 4H (D + C + 1) + 4H x H + 8H, and the
    generator H x C + C."""
    cell = 4 * hidden * (features + classes + 1) + 4 * hidden * hidden + 8 * hidden
    count = (
        features * hidden + hidden * hidden + hidden + hidden + cell + hidden * classes + classes
    )
    return count * 4 / 2**20


def cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.mark.skipif(sys.platform != "linux", reason="the kept-memory pass needs glibc")
def test_bench_complexity_prints_tables_and_both_softmax_ratios():
    """Catches a table whose figures do not follow from its inputs: the attention head's size
    against the formula above, the logits' size (B x T x C floats), and each "/ CTC" column and
    the summary's ACE / CTC figures against the table's own memory and time columns."""
    batch, frames, features, hidden = 2, 8, 16, 16
    args = ["--classes", "5", "600", "--batch", str(batch), "--frames", str(frames)]
    args += ["--max-label", "3", "--features", str(features), "--hidden", str(hidden)]
    args += ["--repeats", "1", "--warmup", "0", "--ratio-repeats", "3", "--device", "cpu"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_complexity.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    for classes in (5, 600):
        header = (
            f"| {classes} classes | Para (MB) | Mem (MB) | Time (ms) | Mem / CTC | Time / CTC |"
        )
        start = next(i for i, x in enumerate(lines) if x.startswith(header))
        rows = {}
        for line in lines[start + 2 :]:
            if not line.startswith("|"):
                break
            rows[cells(line)[0]] = cells(line)
        assert {"CTC", "ACE", "Attention"} <= rows.keys()
        assert rows["CTC"][1] == rows["ACE"][1] == "none"  # CTC and ACE have no parameters
        expected = attention_parameters_mb(classes, features, hidden)
        assert rows["Attention"][1] == f"{expected:.3g}"
        ctc_mem, ctc_ms = float(rows["CTC"][2]), float(rows["CTC"][3])
        for name, row in rows.items():
            mem, ms, mem_ratio, ms_ratio = (float(v) for v in row[2:6])
            assert mem > 0 and ms > 0
            # the printed columns keep 3 significant digits (each off by up to 0.5%, so their
            # quotient by up to ~1%) and the ratios 2 decimals (0.005): the errors add up
            for printed, derived in ((mem_ratio, mem / ctc_mem), (ms_ratio, ms / ctc_ms)):
                assert abs(printed - derived) <= 0.011 * derived + 0.0051, (name, printed, derived)

        line = next(x for x in lines if x.startswith(f"{classes} classes: ACE / softmax"))
        kept, default = re.search(
            r"= ([\d.]+) \(freed memory kept.*glibc defaults ([\d.]+)", line
        ).groups()
        assert float(kept) > 0 and float(default) > 0
        assert "page faults per call: softmax" in line
        time_ratio, mem_ratio = re.search(
            r"ACE / CTC time ([\d.]+), memory ([\d.]+)", line
        ).groups()
        assert time_ratio == rows["ACE"][5] and mem_ratio == rows["ACE"][4]
        logits_mb = batch * frames * classes * 4 / 2**20
        assert f"the logits ({logits_mb:.3g} MB)" in line
