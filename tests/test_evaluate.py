"""evaluate.py's path: rebuild from the checkpoint, score every set found, write the tables."""

import json
from pathlib import Path

import pytest
import torch

from ace_str.build.checkpoint import load_checkpoint, save_checkpoint
from ace_str.build.config import compose_config
from ace_str.build.models import load_model
from ace_str.data.charset import Charset
from ace_str.data.synth import SyntheticWordDataset
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.run import evaluate_checkpoint


def write_folder(root: Path, labels: list[str]) -> None:
    images = root / "images"
    images.mkdir(parents=True)
    synth = SyntheticWordDataset(Charset(preset="lower36"), length=len(labels), seed=3)
    lines = []
    for i, label in enumerate(labels):
        synth.sample(i)[0].save(images / f"{i}.png")
        lines.append(f"{i}.png\t{label}")
    (root / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_evaluate_every_set_under_root(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    write_folder(tmp_path / "bench" / "SETA", ["Hello", "WORLD!", "x"])
    write_folder(tmp_path / "bench" / "nested" / "SETB", ["a1", "b2"])
    cfg = compose_config(
        "evaluate",
        [
            f"checkpoint={tmp_path / 'run' / 'last.ckpt'}",
            f"data.root={tmp_path / 'bench'}",
            "data.num_workers=0",
            "data.batch_size=2",
        ],
    )
    rows = evaluate_checkpoint(cfg)
    assert rows["SETA"]["samples"] == 3 and rows["SETB"]["samples"] == 2
    assert rows["weighted mean"]["samples"] == 5
    plain = (rows["SETA"]["word_accuracy"] + rows["SETB"]["word_accuracy"]) / 2
    assert abs(rows["plain mean"]["word_accuracy"] - plain) < 1e-9
    stem = tmp_path / "run" / "eval_last_bench_standard"
    assert json.loads(stem.with_suffix(".json").read_text())["SETA"]["samples"] == 3
    table = stem.with_suffix(".md").read_text()
    assert "| SETA | 3 |" in table and "| plain mean |" in table
    assert stem.with_suffix(".csv").read_text().startswith("set,")


def test_protocol_that_erases_the_charset_is_refused(tiny_config, tmp_path):
    cfg = tiny_config("trainer.max_steps=1", "charset.preset=null", "+charset.symbols='!?#%&@'")
    Trainer(cfg, tmp_path / "run").fit()
    write_folder(tmp_path / "bench" / "SETA", ["a"])
    eval_cfg = compose_config(
        "evaluate",
        [f"checkpoint={tmp_path / 'run' / 'last.ckpt'}", f"data.root={tmp_path / 'bench'}"],
    )
    with pytest.raises(ValueError, match="protocol=standard erases every symbol"):
        evaluate_checkpoint(eval_cfg)


def test_decoder_switch_after_training(tiny_config, tmp_path):
    """decoder=count scores the same ACE checkpoint with count-aware decoding, in its own
    files; a decoding the head does not have is refused by name."""
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    write_folder(tmp_path / "bench" / "SETA", ["ab", "c"])
    args = [
        f"checkpoint={tmp_path / 'run' / 'last.ckpt'}",
        f"data.root={tmp_path / 'bench'}",
        "data.num_workers=0",
    ]
    rows = evaluate_checkpoint(compose_config("evaluate", [*args, "decoder=count"]))
    assert rows["SETA"]["samples"] == 2
    assert (tmp_path / "run" / "eval_last_bench_standard_count.md").exists()
    with pytest.raises(ValueError, match="ACE decoder must be one of"):
        evaluate_checkpoint(compose_config("evaluate", [*args, "decoder=beam"]))


def reads_only(letter: str, checkpoint: Path) -> int:
    """Rewrite ``checkpoint`` so its model reads ``letter`` in every frame; its frame count."""
    state = load_checkpoint(checkpoint)
    weight, bias = state["model"]["head.classifier.weight"], state["model"]["head.classifier.bias"]
    weight.zero_()
    bias.fill_(-10.0)
    bias[1 + state["charset"].index(letter)] = 10.0  # class 0 is the blank
    save_checkpoint(state, checkpoint)
    model, _, cfg = load_model(checkpoint, torch.device("cpu"))
    with torch.inference_mode():
        return model(torch.zeros(1, cfg.data.channels, cfg.data.height, cfg.data.width)).shape[1]


def test_standard_protocol_normalises_the_ground_truth(tiny_config, tmp_path):
    """Catches an evaluation that compares the normalised reading with the raw label (or skips
    normalising either side): under the standard protocol "AAA" and "aa!a" are read right by a
    model that reads "aaa". A model that reads one known word makes the figures checkable by
    hand; an untrained one reads nothing right under any protocol."""
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    checkpoint = tmp_path / "run" / "last.ckpt"
    frames = reads_only("a", checkpoint)  # ACE greedy keeps repeats: it reads "a" * frames
    labels = ["A" * frames, "a" * (frames - 1) + "!a", "Ab"]
    write_folder(tmp_path / "bench" / "SETA", labels)
    args = [f"checkpoint={checkpoint}", f"data.root={tmp_path / 'bench'}", "data.num_workers=0"]

    row = evaluate_checkpoint(compose_config("evaluate", args))["SETA"]
    # compared as "a"*T, "a"*T, "ab": two right; "ab" is T - 1 edits from "a"*T
    assert row["word_accuracy"] == pytest.approx(2 / 3)
    assert row["one_minus_ned"] == pytest.approx((1 + 1 + 1 / frames) / 3)
    assert row["cer"] == pytest.approx((frames - 1) / (2 * frames + 2))
    predictions = tmp_path / "run" / "eval_last_bench_standard_sets" / "SETA_predictions.tsv"
    rows = [line.split("\t") for line in predictions.read_text().splitlines()[1:]]
    assert [(r[1], r[2], r[-1]) for r in rows] == [
        (labels[0], "a" * frames, "1"),
        (labels[1], "a" * frames, "1"),
        (labels[2], "a" * frames, "0"),
    ]
    exact = evaluate_checkpoint(compose_config("evaluate", [*args, "protocol=exact"]))["SETA"]
    assert exact["word_accuracy"] == 0.0
