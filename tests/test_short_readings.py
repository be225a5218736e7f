"""scripts/short_readings.py: what kinds of errors a checkpoint makes, where ACE's letters go."""

from __future__ import annotations

from collections import Counter

import torch

from ace_str.data.charset import Charset
from ace_str.engine.trainer import Trainer
from tests.conftest import load_script
from tests.test_lmdb import make_folder


def test_reading_kinds_and_deleted_positions():
    script = load_script("short_readings")
    kinds = [script.reading_kind("hotel", r) for r in ("hotel", "hote", "hotels", "hotol", "ohtel")]
    assert kinds == ["correct", "shorter", "longer", "same length", "anagram"]
    assert script.deleted_positions("hotel", "otl") == Counter({"first": 1, "middle": 1})
    assert script.deleted_positions("hotel", "hote") == Counter({"last": 1})
    assert script.deleted_positions("hotel", "hxtel") == Counter()  # a substitution


def test_missing_letters_are_split_by_where_their_mass_went():
    """Truth "abc" read "a": b kept 0.4 of a frame (near miss); c's mass went to 'A'-less other
    letters while the letter mass holds three letters (confused); with the blank holding the
    frames, a letter missing is the blank's."""
    script = load_script("short_readings")
    charset = Charset("abcd")  # classes: 1 a, 2 b, 3 c, 4 d
    classes = script.letter_classes(charset)
    assert classes["a"] == [1] and classes["d"] == [4]
    confused = torch.tensor(
        [[0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.4, 0.0, 0.6], [0.0, 0.0, 0.0, 0.1, 0.9]]
    )
    assert script.missing_mass(confused, "abc", "ad", classes) == Counter(
        {"near miss": 1, "confused": 1}
    )
    absorbed = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0], [0.9, 0.0, 0.1, 0.0, 0.0]])
    assert script.missing_mass(absorbed, "ab", "a", classes) == Counter({"blank": 1})


def test_the_report_adds_up_and_ace_gets_its_decoding_rows(tiny_config, tmp_path):
    """On a tiny ACE checkpoint: the kinds cover every sample; the mass decoder at threshold 0.5
    and blank shift 0 is the checkpoint's own reading, so it equals the share read correctly."""
    Trainer(tiny_config("trainer.max_steps=2", "head.decoder=mass"), tmp_path / "run").fit()
    folder = str(make_folder(tmp_path / "set", ["Ab", "cd!", "efg", "h"]))
    script = load_script("short_readings")
    result = script.analyse(str(tmp_path / "run" / "last.ckpt"), folder, [0.3, 0.5], [0.0])
    assert result["ace"] and result["samples"] == 4 and sum(result["kinds"].values()) == 4
    assert result["by_threshold"][0.5] == result["by_shift"][0.0] == result["kinds"]["correct"]
    text = script.report({"run": result})
    assert "| threshold 0.3 |" in text and "| blank logit - 0 |" in text
