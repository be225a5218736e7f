"""scripts/words_vs_random.py: a checkpoint read on one text source at a time."""

from __future__ import annotations

from ace_str.engine.trainer import Trainer
from tests.conftest import load_script


def test_each_source_is_read_alone_and_reported(tiny_config, tmp_path, capsys):
    """On a tiny checkpoint: one accuracy per source asked for, in [0, 100], and a row per
    checkpoint in the printed table."""
    Trainer(tiny_config("trainer.max_steps=2"), tmp_path / "run").fit()
    script = load_script("words_vs_random")
    checkpoint = str(tmp_path / "run" / "last.ckpt")
    results = script.main(
        ["--checkpoints", checkpoint, "--samples", "8", "--sources", "words", "numbers"]
    )
    assert set(results[checkpoint]) == {"words", "numbers"}
    assert all(0.0 <= a <= 100.0 for a in results[checkpoint].values())
    out = capsys.readouterr().out
    assert f"| {checkpoint} |" in out and "numbers (%)" in out and "random" not in out


def test_a_source_dataset_draws_only_that_source(tiny_config):
    """numbers: digits only (lower36 has no '.', so plain digit runs); words: vocabulary words."""
    from ace_str.build.models import build_charset
    from ace_str.data.synth.words import english_words

    cfg = tiny_config()
    charset = build_charset(cfg)
    script = load_script("words_vs_random")
    numbers = script.source_dataset(cfg, charset, "numbers", 20, 5)
    assert all(numbers.sample(i)[1].isdigit() for i in range(20))
    vocabulary = set(english_words(cfg.data.synth.vocab_size))
    words = script.source_dataset(cfg, charset, "words", 20, 5)
    assert all(words.sample(i)[1] in vocabulary for i in range(20))
