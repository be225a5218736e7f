"""evaluate.py's path: rebuild from the checkpoint, score every set found, write the tables."""

import json
from pathlib import Path

from ace_str.data.charset import Charset
from ace_str.data.synth import SyntheticWordDataset
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.run import evaluate_checkpoint
from tests.conftest import compose_config


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
    import pytest

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
    import pytest

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
