"""Lexicon files, nearest-word decoding with ties broken by the model, and the SVT-50 column."""

import math
from types import SimpleNamespace

import pytest
import torch

from ace_str.build.config import compose_config
from ace_str.data.charset import Charset
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.lexicon import constrain, head_loss_scorer, load_lexicons
from ace_str.evaluation.run import evaluate_checkpoint
from ace_str.models.heads.ace import ACEHead
from ace_str.models.heads.ctc import CTCHead
from tests.test_evaluate import write_folder

CHARSET = Charset(preset="lower36")


def test_nearest_word_after_normalisation():
    assert constrain("D00R", ["THE", "DOOR", "FLOOR"]) == "door"
    assert constrain("", ["to", "a", "abc"]) == "a"  # distance 1 beats 2 and 3
    assert constrain("x", []) == ""


def test_tie_without_score_is_alphabetical():
    assert constrain("ax", ["AC", "ab"]) == "ab"
    always_inf = lambda word: math.inf  # noqa: E731
    assert constrain("ax", ["ac", "ab"], score=always_inf) == "ab"


def test_tie_broken_by_score_not_by_order():
    scores = {"ab": 2.0, "ac": 1.0, "zz": 0.0}
    assert constrain("ax", ["ab", "ac", "zz"], score=scores.__getitem__) == "ac"


def one_hot_logits(frames: list[dict[str, float]]) -> torch.Tensor:
    """(T, C) logits: given log-odds per symbol per frame, blank (class 0) at 0, others -9."""
    logits = torch.full((len(frames), CHARSET.num_classes), -9.0)
    logits[:, 0] = 0.0
    for t, frame in enumerate(frames):
        for symbol, value in frame.items():
            logits[t, CHARSET.encode(symbol)[0]] = value
    return logits


@pytest.mark.parametrize("head_cls", [ACEHead, CTCHead])
@pytest.mark.parametrize("favoured", ["b", "c"])
def test_head_loss_breaks_a_tie(head_cls, favoured):
    other = "c" if favoured == "b" else "b"
    logits = one_hot_logits([{"a": 5.0}, {"x": 4.0, favoured: 3.0, other: 1.0}, {}, {}])
    model = SimpleNamespace(head=head_cls(in_features=4, num_classes=CHARSET.num_classes))
    score = head_loss_scorer(model, CHARSET, logits)
    assert score("a" + favoured) < score("a" + other)
    assert constrain("ax", ["ab", "ac"], score=score) == "a" + favoured
    assert score("abcde") == math.inf  # longer than the 4 frames
    assert score("!!") == math.inf  # nothing the charset can encode


def test_lexicon_files(tmp_path):
    write_folder(tmp_path / "SVT", ["one", "two"])
    (tmp_path / "SVT" / "lexicon_50.tsv").write_text("0.png\tONE,TWO\n1.png\tTWO,THREE\n")
    (tmp_path / "SVT" / "lexicon_full.txt").write_text("one\n\ntwo\n")
    lexicons = {lex.name: lex for lex in load_lexicons(tmp_path / "SVT")}
    assert lexicons["50"].words_for("images/1.png") == ["TWO", "THREE"]
    assert lexicons["50"].words_for("images/9.png") is None
    assert lexicons["full"].words_for("anything") == ["one", "two"]
    (tmp_path / "SVT" / "lexicon_bad.tsv").write_text("0.png ONE\n")
    with pytest.raises(ValueError, match=r"lexicon_bad.tsv:1"):
        load_lexicons(tmp_path / "SVT")


def test_evaluate_reports_lexicon_columns(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    truths = ["apple", "river", "stone", "cloud"]
    write_folder(tmp_path / "bench" / "SVT", truths)
    # a one-word lexicon holding the truth must read every image right, whatever the model;
    # a set-wide lexicon without the truths can read none right
    lines = [f"{i}.png\t{word.upper()}" for i, word in enumerate(truths)]
    (tmp_path / "bench" / "SVT" / "lexicon_1.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "bench" / "SVT" / "lexicon_full.txt").write_text("zebra\nquartz\n")
    cfg = compose_config(
        "evaluate",
        [
            f"checkpoint={tmp_path / 'run' / 'last.ckpt'}",
            f"data.root={tmp_path / 'bench'}",
            "data.num_workers=0",
            "data.batch_size=3",
            "benchmarks=regular",
        ],
    )
    rows = evaluate_checkpoint(cfg)
    assert list(rows) == ["SVT_647", "weighted mean", "plain mean"]
    assert rows["SVT_647"]["lexicon_1_accuracy"] == 1.0
    assert rows["SVT_647"]["lexicon_full_accuracy"] == 0.0
    table = (tmp_path / "run" / "eval_last_bench_standard.md").read_text()
    assert "lex-1 acc (%)" in table and "| SVT_647 | 4 |" in table
    sets = tmp_path / "run" / "eval_last_bench_standard_sets"
    predictions = (sets / "SVT_647_predictions.tsv").read_text().splitlines()
    assert predictions[0] == "path_or_index\ttruth\tprediction\tconfidence\tcorrect"
    assert [p.split("\t")[:2] for p in predictions[1:]] == [
        [f"images/{i}.png", word] for i, word in enumerate(truths)
    ]
    if rows["SVT_647"]["word_accuracy"] < 1.0:
        assert (sets / "SVT_647_worst.png").stat().st_size > 0
