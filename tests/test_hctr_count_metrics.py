"""CR/AR (ICDAR 2013), Table 4's counting errors, and counts read off a probability map."""

import math

import pytest
import torch

from ace_str.models.counting import counts_from_map
from ace_str.scoring.metrics import (
    CountTotals,
    MetricTotals,
    alignment_errors,
    correct_accurate_rates,
    counting_errors,
)


def test_alignment_errors_split_substitutions_deletions_insertions():
    assert alignment_errors("abcd", "abcd") == (0, 0, 0)
    assert alignment_errors("axcd", "abcd") == (1, 0, 0)
    assert alignment_errors("acd", "abcd") == (0, 1, 0)  # b missing: deletion
    assert alignment_errors("abxcd", "abcd") == (0, 0, 1)  # x extra: insertion
    assert alignment_errors("", "中文") == (0, 2, 0)
    assert alignment_errors("中文", "") == (0, 0, 2)
    assert alignment_errors("中字文本", "中文书") == (1, 0, 1)


def test_cr_ar_running_totals_merge():
    # truth 10 chars: "中文" exact; "手写文本识别" with one substitution and one deletion
    # ("手写文本识别" -> "手与文本识"); "汉字" with one insertion ("汉字啊").
    totals = MetricTotals()
    totals.update(["中文", "手与文本识"], ["中文", "手写文本识别"])
    other = MetricTotals()
    other.update(["汉字啊"], ["汉字"])
    totals.merge(other)
    assert (totals.substitutions, totals.deletions, totals.insertions) == (1, 1, 1)
    s = totals.summary()
    assert s["correct_rate"] == pytest.approx((10 - 1 - 1) / 10)
    assert s["accurate_rate"] == pytest.approx((10 - 1 - 1 - 1) / 10)
    assert s["word_accuracy"] == pytest.approx(1 / 3)  # the existing keys stay


def test_accurate_rate_can_go_negative():
    cr, ar = correct_accurate_rates(truth_chars=2, substitutions=0, deletions=0, insertions=5)
    assert (cr, ar) == (1.0, -1.5)


def test_counting_rmse_and_relative_rmse_by_hand():
    truth = torch.tensor([[0, 2], [1, 0], [3, 1]])
    predicted = torch.tensor([[1, 2], [1, 0], [1, 1]])
    rmse, rel = counting_errors(predicted, truth)
    # class 0 errors 1, 0, -2 at counts 0, 1, 3; class 1 exact
    assert rmse.tolist() == pytest.approx([math.sqrt(5 / 3), 0.0])
    assert rel.tolist() == pytest.approx([math.sqrt((1 / 1 + 0 + 4 / 4) / 3), 0.0])

    totals = CountTotals()
    totals.update(predicted[:1], truth[:1])
    rest = CountTotals()
    rest.update(predicted[1:], truth[1:])
    totals.merge(rest)
    s = totals.summary()
    assert s["samples"] == 3
    assert s["m_rmse"] == pytest.approx(math.sqrt(5 / 3) / 2)
    assert s["m_rel_rmse"] == pytest.approx(math.sqrt(2 / 3) / 2)
    with pytest.raises(ValueError, match="classes"):
        totals.update(predicted[:, :1], truth[:, :1])


def test_counts_from_hand_made_probability_map():
    # a 2 x 3 map over (blank, cat, dog): probabilities chosen, logits = their logs
    probs = torch.tensor(
        [
            [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [1.0, 0.0, 0.0]],
            [[0.6, 0.0, 0.4], [0.5, 0.3, 0.2], [0.9, 0.0, 0.1]],
        ]
    )  # sums: blank 3.3, cat 1.8, dog 0.9
    counts = counts_from_map(probs.clamp_min(1e-12).log()[None])
    assert counts.dtype == torch.long
    assert counts.tolist() == [[3, 2, 1]]
    # the 1D (B, T, C) layout reads the same; 0.4 of a dog rounds to none
    seq = torch.tensor([[[0.6, 0.0, 0.4], [1.0, 0.0, 0.0]]])
    assert counts_from_map(seq.clamp_min(1e-12).log()).tolist() == [[2, 0, 0]]
