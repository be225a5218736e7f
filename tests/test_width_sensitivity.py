"""scripts/width_sensitivity.py: real crops stretched in width, read by a checkpoint."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ace_str.build.loaders import eval_loader
from ace_str.build.models import load_model
from ace_str.build.transform import build_transform
from ace_str.data.folder import open_dataset
from ace_str.engine.trainer import Trainer
from ace_str.scoring.evaluator import evaluate_batches
from tests.conftest import load_script
from tests.test_lmdb import make_folder

LABELS = ["Ab", "cd!", "efg", "h"]  # read as "ab", "cd", "efg", "h" (standard protocol)


def test_stretch_resizes_only_the_width_before_the_models_transform():
    script = load_script("width_sensitivity")
    seen = []
    image = Image.new("L", (40, 10))
    script.stretched(1.5, lambda im: seen.append(im.size) or "x")(image)
    script.stretched(0.01, lambda im: seen.append(im.size) or "x")(image)
    assert seen == [(60, 10), (1, 10)]


def test_unstretched_reading_equals_the_evaluators(tiny_config, tmp_path):
    """At 1x the script reads what evaluate_batches reads on the same folder; the shares add
    up to at most 100%."""
    Trainer(tiny_config("trainer.max_steps=2"), tmp_path / "run").fit()
    ckpt = str(tmp_path / "run" / "last.ckpt")
    folder = str(make_folder(tmp_path / "set", LABELS))
    row, wide = load_script("width_sensitivity").measure(ckpt, folder, [1.0, 1.6])
    model, charset, cfg = load_model(ckpt, torch.device("cpu"))
    dataset = open_dataset(folder, charset, transform=build_transform(cfg), filter_labels=False)
    result = evaluate_batches(model, eval_loader(dataset, charset, 8, 0), charset, "cpu")
    assert row["samples"] == result.totals.samples == 4
    assert row["accuracy"] == pytest.approx(100 * result.totals.correct / 4)
    assert row["accuracy"] + row["shorter"] + row["longer"] <= 100 + 1e-9
    assert wide["samples"] == 4
