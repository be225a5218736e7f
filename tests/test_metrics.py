import pytest

from ace_str.scoring.metrics import MetricTotals, normalize_text, one_minus_ned


def test_standard_protocol_lowercases_and_drops_punctuation():
    assert normalize_text("Hello, World-2!") == "helloworld2"
    assert normalize_text("Hello, W", "case_sensitive") == "Hello,W"
    assert normalize_text("Hi!", "punctuation") == "hi!"
    with pytest.raises(ValueError):
        normalize_text("x", "nope")


def test_ned_edge_cases():
    assert one_minus_ned("", "") == 1.0
    assert one_minus_ned("abc", "") == 0.0
    assert one_minus_ned("abd", "abc") == pytest.approx(2 / 3)


def test_totals_on_hand_made_cases():
    totals = MetricTotals()
    totals.update(["hello", "wrld", "aab"], ["hello", "world", "abb"], [0.9, 0.5, 0.1])
    s = totals.summary()
    assert s["samples"] == 3
    assert s["word_accuracy"] == pytest.approx(1 / 3)
    assert s["one_minus_ned"] == pytest.approx((1 + 4 / 5 + 2 / 3) / 3)
    assert s["cer"] == pytest.approx(2 / 13)  # one deletion + one substitution over 13 chars
    # multiset: hello 5/5, wrld 4 matched, aab vs abb: a,b matched = 2
    assert s["count_precision"] == pytest.approx(11 / 12)
    assert s["count_recall"] == pytest.approx(11 / 13)
    assert s["mean_confidence"] == pytest.approx(0.5)
    other = MetricTotals()
    other.update(["x"], ["x"])
    totals.merge(other)
    assert totals.summary()["word_accuracy"] == pytest.approx(2 / 4)
