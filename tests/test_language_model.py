"""The character n-gram and decoding with it: ACE's near counts, CTC's fused beam search."""

import itertools
import logging
import math

import numpy as np
import pytest
import torch

from ace_str.build.config import compose_config
from ace_str.data.charset import Charset
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.reader import read_with_checkpoint
from ace_str.evaluation.run import evaluate_checkpoint
from ace_str.models.decoding import ctc_prefix_beam_search
from ace_str.models.heads.ace import ACEHead
from ace_str.models.heads.attention import AttentionHead
from ace_str.models.heads.ctc import CTCHead
from ace_str.models.language_model import CharNGram, english_language_model
from ace_str.models.lm_decoding import ace_frame_beam_search, ace_lm_decode, count_log_probs
from tests.conftest import load_script
from tests.test_evaluate import write_folder

# classes: 0 blank, 1 'a', 2 'b', 3 'c'
NUM_CLASSES = 4


def frames_to_logits(rows: list[list[float]]) -> torch.Tensor:
    """(1, T, C) logits whose softmax is ``rows`` (each row a distribution)."""
    return torch.tensor(rows, dtype=torch.float64).clamp_min(1e-9).log()[None].float()


def test_witten_bell_is_a_distribution_in_every_context():
    lm = CharNGram([[1, 2], [1, 1, 2], [3]], NUM_CLASSES, order=3)
    for history in ([], [1], [1, 1], [3, 2], [2, 2, 2]):
        total = sum(math.exp(lm.log_prob(history, s)) for s in range(NUM_CLASSES))
        assert total == pytest.approx(1.0, abs=1e-12)
    # seen continuations beat unseen ones; the word's end is predicted where words ended
    assert lm.log_prob([1], 2) > lm.log_prob([1], 3)
    assert lm.log_prob([1, 2], 0) > lm.log_prob([1, 2], 1)
    assert lm.score([1, 2]) > lm.score([2, 1])


def test_witten_bell_by_hand_for_a_unigram():
    """Order 1: P(s) = (c(s) + u / C) / (N + u), u the distinct symbols (ends included)."""
    lm = CharNGram([[1, 1], [2]], NUM_CLASSES, order=1)
    # counts: 'a' 2, 'b' 1, end 2; N = 5, u = 3
    assert math.exp(lm.log_prob([], 1)) == pytest.approx((2 + 3 / 4) / 8)
    assert math.exp(lm.log_prob([], 3)) == pytest.approx((0 + 3 / 4) / 8)


def test_language_model_refuses_bad_input():
    with pytest.raises(ValueError, match="outside 1..3"):
        CharNGram([[1, 4]], NUM_CLASSES)
    with pytest.raises(ValueError, match="outside 1..3"):
        CharNGram([[0, 1]], NUM_CLASSES)
    with pytest.raises(ValueError, match="at least one training sequence"):
        CharNGram([], NUM_CLASSES)
    with pytest.raises(ValueError, match="order must be at least 1"):
        CharNGram([[1]], NUM_CLASSES, order=0)


def test_english_model_knows_words_and_numbers():
    charset = Charset(preset="lower36")
    lm = english_language_model(charset)
    assert english_language_model(charset) is lm  # built once per charset
    score = lambda text: lm.score(charset.encode(text))  # noqa: E731
    assert score("hollywood") > score("hollywod") + 5
    assert score("street") > score("strcet") + 5
    assert score("1995") > score("qzxv")  # the renderer's numbers are in it


def test_count_law_matches_enumeration():
    probs = np.array([0.9, 0.5, 0.2, 0.05])
    expected = np.zeros(5)
    for held in itertools.product([0, 1], repeat=4):
        chances = [p if h else 1 - p for p, h in zip(probs, held, strict=True)]
        expected[sum(held)] += np.prod(chances)
    assert np.exp(count_log_probs(probs, 4)) == pytest.approx(expected, abs=1e-12)
    # truncated: the first counts are the same
    assert np.exp(count_log_probs(probs, 2)) == pytest.approx(expected[:3], abs=1e-12)


FLAT_LM = CharNGram([[1], [2], [3]], NUM_CLASSES, order=1)


# hand-made frames and what both ACE searches read from them without the language model
HAND_MADE = [
    # peaky "ab"
    ([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]], [1, 2]),
    # "aa" held as two sure frames side by side: ACE collapses nothing
    ([[0, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]], [1, 1]),
    # 'b' spread 0.5 / 0.5 over two frames: once with 0.5, twice or never with 0.25 each
    ([[0.5, 0, 0.5, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1]], [2, 3]),
    # empty
    ([[1, 0, 0, 0]] * 3, []),
]


@pytest.mark.parametrize(("rows", "reading"), HAND_MADE)
def test_ace_lm_decode_without_weight_reads_the_likeliest_counts(rows, reading):
    sequences, confidence = ace_lm_decode(frames_to_logits(rows), FLAT_LM, lm_weight=0.0)
    assert sequences == [reading]
    assert 0 < float(confidence[0]) <= 1


def test_ace_lm_decode_lets_the_words_choose_between_near_counts():
    """'a' holds 1.45 (a sure frame and one at 0.45), 'b' one sure frame: the frames alone say
    "ab" (P(one 'a') 0.55 against 0.45); a model that has only seen "aab" reads "aab"."""
    rows = [[0, 1, 0, 0], [0.55, 0.45, 0, 0], [0, 0, 1, 0]]
    logits = frames_to_logits(rows)
    assert ace_lm_decode(logits, FLAT_LM, 0.0)[0] == [[1, 2]]
    lm = CharNGram([[1, 1, 2]] * 5, NUM_CLASSES, order=3)
    assert ace_lm_decode(logits, lm, 1.0)[0] == [[1, 1, 2]]
    # the confidence stays the frames' probability of the counts read
    assert float(ace_lm_decode(logits, lm, 1.0)[1][0]) == pytest.approx(0.45, abs=1e-4)
    with pytest.raises(ValueError, match="candidates must be at least 1"):
        ace_lm_decode(logits, lm, 1.0, candidates=0)


def test_ace_lm_decode_keeps_mass_order_on_2d_maps():
    """(1, H, W, C) maps read column by column, as the other ACE decoders."""
    probs = torch.zeros(1, 2, 2, NUM_CLASSES)
    probs[..., 0] = 1.0
    probs[0, 1, 0] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # 'b' bottom of the first column
    probs[0, 0, 1] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # 'a' top of the second
    logits = probs.clamp_min(1e-9).log()
    assert ace_lm_decode(logits, FLAT_LM, 0.0, order="column")[0] == [[2, 1]]
    assert ace_lm_decode(logits, FLAT_LM, 0.0, order="row")[0] == [[1, 2]]


def test_ctc_beam_with_the_language_model():
    """Frames say 'b' (0.55) over 'c' (0.45) in the middle: without the model "ab", with a
    model of "ac" "ac"; weight 0 equals plain beam search, and the confidence stays the
    network's probability of the reading."""
    rows = [[0, 1, 0, 0], [0, 0, 0.55, 0.45], [1, 0, 0, 0]]
    logits = frames_to_logits(rows)
    plain, plain_conf = ctc_prefix_beam_search(logits, 3)
    assert plain == [[1, 2]]
    lm = CharNGram([[1, 3]] * 5, NUM_CLASSES, order=2)
    same, same_conf = ctc_prefix_beam_search(logits, 3, lm, 0.0)
    assert same == plain and same_conf.tolist() == pytest.approx(plain_conf.tolist())
    fused, fused_conf = ctc_prefix_beam_search(logits, 3, lm, 1.0)
    assert fused == [[1, 3]]
    assert float(fused_conf[0]) == pytest.approx(0.45, abs=1e-4)


@pytest.mark.parametrize(("rows", "reading"), HAND_MADE)
def test_frame_beam_without_weight_reads_the_likeliest_reading(rows, reading):
    sequences, confidence = ace_frame_beam_search(frames_to_logits(rows), FLAT_LM, 0.0)
    assert sequences == [reading]
    assert 0 < float(confidence[0]) <= 1


def test_frame_beam_sums_the_labellings_of_a_reading():
    """'b' 0.5 / 0.5 then a sure 'c': P("bc") = 0.5 (b- or -b), the confidence."""
    rows = [[0.5, 0, 0.5, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1]]
    _, confidence = ace_frame_beam_search(frames_to_logits(rows), FLAT_LM, 0.0)
    assert float(confidence[0]) == pytest.approx(0.5, abs=1e-4)


def test_frame_beam_lets_the_words_take_a_second_choice():
    """The middle frame says 'b' 0.55 over 'c' 0.45; a model of "ac" reads "ac", and the
    confidence stays the network's 0.45; "ab" without it."""
    logits = frames_to_logits([[0, 1, 0, 0], [0, 0, 0.55, 0.45], [1, 0, 0, 0]])
    assert ace_frame_beam_search(logits, FLAT_LM, 0.0)[0] == [[1, 2]]
    lm = CharNGram([[1, 3]] * 5, NUM_CLASSES, order=2)
    reading, confidence = ace_frame_beam_search(logits, lm, 1.0)
    assert reading == [[1, 3]] and float(confidence[0]) == pytest.approx(0.45, abs=1e-4)
    with pytest.raises(ValueError, match="beam_width must be at least 1"):
        ace_frame_beam_search(logits, lm, 1.0, beam_width=0)


def test_heads_switch_to_the_language_model_and_back():
    rows = [[0, 1, 0, 0], [0.55, 0.45, 0, 0], [0, 0, 1, 0]]
    logits = frames_to_logits(rows)
    lm = CharNGram([[1, 1, 2]] * 5, NUM_CLASSES, order=3)
    ace = ACEHead(8, NUM_CLASSES, decoder="mass")
    assert ace.decode(logits)[0] == [[1, 2]]
    ace.use_language_model(lm, 1.0)  # frame readings: 'a' twice with 0.45
    assert ace.decode(logits)[0] == [[1, 1, 2]]
    ace.use_language_model(None)
    assert ace.decode(logits)[0] == [[1, 2]]
    # a smoothed head chooses among counts: the frame that holds a little of every class and no
    # blank would read as a letter
    junk = [[0.0, 1 / 3, 1 / 3, 1 / 3], [0, 1, 0, 0], [1, 0, 0, 0]]
    smoothed = ACEHead(8, NUM_CLASSES, decoder="mass", count_smoothing=0.05)
    smoothed.use_language_model(FLAT_LM, 1e-6)
    plain = ACEHead(8, NUM_CLASSES, decoder="mass")
    plain.use_language_model(FLAT_LM, 1e-6)
    assert smoothed.decode(frames_to_logits(junk))[0] == [[1]]
    assert len(plain.decode(frames_to_logits(junk))[0][0]) == 2
    ctc = CTCHead(8, NUM_CLASSES)
    ctc.use_language_model(lm, 1.0)
    assert ctc.decode(frames_to_logits([[0, 1, 0, 0], [0, 0, 0.55, 0.45]]))[0] == [[1, 2]]
    with pytest.raises(ValueError, match="no decoding with a language model"):
        AttentionHead(8, NUM_CLASSES).use_language_model(lm, 1.0)


def test_evaluate_with_the_language_model_writes_its_own_tables(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    write_folder(tmp_path / "bench" / "SETA", ["the", "car"])
    args = [
        f"checkpoint={tmp_path / 'run' / 'last.ckpt'}",
        f"data.root={tmp_path / 'bench'}",
        "data.num_workers=0",
    ]
    rows = evaluate_checkpoint(compose_config("evaluate", [*args, "lm.weight=0.5"]))
    assert rows["SETA"]["samples"] == 2
    assert (tmp_path / "run" / "eval_last_bench_standard_lm0p5_0.md").exists()
    with pytest.raises(ValueError, match="lm.weight must be at least 0"):
        evaluate_checkpoint(compose_config("evaluate", [*args, "lm.weight=-1"]))


def test_tune_lm_reads_once_and_scores_every_pair(tiny_config, tmp_path, capsys):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path / "run").fit()
    write_folder(tmp_path / "train", ["the", "car", "7"])
    script = load_script("tune_lm")
    rows = script.grid(str(tmp_path / "run" / "last.ckpt"), str(tmp_path / "train"), [0, 1], [0, 2])
    assert [(r["weight"], r["bonus"]) for r in rows] == [(0, 0), (1, 0), (1, 2)]
    assert all(r["samples"] == 3 for r in rows)


def test_read_with_the_language_model_on_a_ctc_checkpoint(tiny_config, tmp_path, caplog):
    Trainer(tiny_config("trainer.max_steps=1", "head=ctc"), tmp_path / "run").fit()
    write_folder(tmp_path / "imgs", ["the", "car"])
    cfg = compose_config(
        "read",
        [
            f"checkpoint={tmp_path / 'run' / 'last.ckpt'}",
            f"images={tmp_path / 'imgs' / 'images'}",
            "num_workers=0",
            "lm.weight=0.5",
            "lm.length_bonus=1",
        ],
    )
    with caplog.at_level(logging.INFO):
        results = read_with_checkpoint(cfg)
    assert len(results) == 2 and all(0.0 <= r.confidence <= 1.0 for r in results)
    assert any("decoding with a 5-gram" in r.getMessage() for r in caplog.records)
