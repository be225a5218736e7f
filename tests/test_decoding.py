import pytest
import torch

from ace_str.models.decoding import (
    ace_apportion_decode,
    ace_count_decode,
    ace_greedy_decode,
    ace_mass_decode,
    ace_peak_decode,
    ace_segment_decode,
    ctc_greedy_decode,
    flatten_2d,
)
from ace_str.models.heads.ace import ACEHead


def one_hot_logits(frames: list[int], classes: int = 6) -> torch.Tensor:
    logits = torch.full((1, len(frames), classes), -10.0)
    for t, k in enumerate(frames):
        logits[0, t, k] = 10.0
    return logits


def test_ace_keeps_adjacent_repeats():
    seqs, conf = ace_greedy_decode(one_hot_logits([0, 3, 3, 0, 2]))
    assert seqs == [[3, 3, 2]]
    assert 0.99 < float(conf[0]) <= 1.0


def test_ace_all_blank_is_empty_with_confidence():
    seqs, conf = ace_greedy_decode(one_hot_logits([0, 0, 0]))
    assert seqs == [[]] and float(conf[0]) > 0.99


def soft_frames(rows: list[dict[int, float]], classes: int = 6) -> torch.Tensor:
    """Logits whose softmax puts the given probabilities on each frame (the rest on blank)."""
    probs = torch.full((1, len(rows), classes), 1e-6)
    for t, row in enumerate(rows):
        for k, p in row.items():
            probs[0, t, k] = p
        probs[0, t, 0] = max(1e-6, 1 - sum(row.values()))
    return probs.log()


def test_count_decoding_drops_a_repeat_beyond_the_predicted_count():
    # 'y' fires in two adjacent frames, 0.6 and 0.55: one y by its mass (1.15), two by argmax
    logits = soft_frames([{2: 0.9}, {3: 0.6}, {3: 0.55}, {}])
    assert ace_greedy_decode(logits)[0] == [[2, 3, 3]]
    assert ace_count_decode(logits)[0] == [[2, 3]]


def test_count_decoding_keeps_a_real_double_letter_and_never_adds():
    double = soft_frames([{4: 0.95}, {4: 0.9}, {}])  # mass 1.85: "ll"
    assert ace_count_decode(double)[0] == [[4, 4]]
    spread = soft_frames([{4: 0.6}, {}, {4: 0.7}, {5: 0.6}])  # mass 1.3, not adjacent
    assert ace_count_decode(spread)[0] == [[4, 4, 5]] == ace_greedy_decode(spread)[0]
    faint = soft_frames([{}, {5: 0.3, 1: 0.25, 2: 0.25}, {}])  # mass 0.3 + 3e-6: kept all the same
    assert ace_count_decode(faint)[0] == [[5]]


def test_count_decoding_drops_the_weaker_frame_of_the_pair():
    logits = soft_frames([{3: 0.4}, {3: 0.55}, {2: 0.9}, {2: 0.8}])  # 3: mass 0.95, 2: 1.7
    assert ace_count_decode(logits)[0] == [[3, 2, 2]]
    confidence = ace_count_decode(logits)[1]
    assert torch.allclose(confidence, ace_greedy_decode(logits)[1])


def soft_map(cells: dict[tuple[int, int], dict[int, float]], shape=(3, 4), classes: int = 6):
    """(1, H, W, C) logits with the given class probabilities per (row, column) cell."""
    probs = torch.full((1, *shape, classes), 1e-6)
    probs[..., 0] = 1.0
    for (y, x), row in cells.items():
        for k, p in row.items():
            probs[0, y, x, k] = p
        probs[0, y, x, 0] = max(1e-6, 1 - sum(row.values()))
    return probs.log()


def test_peak_decoding_reads_a_character_spread_over_cells():
    # class 2 spread over a 2x2 block (mass 1.2, no cell above blank), class 3 one clear cell
    spread = {(0, 0): {2: 0.3}, (0, 1): {2: 0.35}, (1, 0): {2: 0.25}, (1, 1): {2: 0.3}}
    logits = soft_map({**spread, (1, 3): {3: 0.9}})
    assert ace_greedy_decode(logits)[0] == [[3]]
    seqs, conf = ace_peak_decode(logits)
    assert seqs == [[2, 3]]
    assert 0.9 < float(conf[0]) <= 1.0  # 2: 1.2 capped at 1 around its peak; 3: 0.9 + ~0


def test_peak_decoding_counts_repeats_and_orders_by_column_or_row():
    # two 4s apart (mass 1.8), one 5 whose column comes first but row comes last
    logits = soft_map({(0, 1): {4: 0.9}, (0, 3): {4: 0.9}, (2, 0): {5: 0.8}})
    assert ace_peak_decode(logits, "column")[0] == [[5, 4, 4]]
    assert ace_peak_decode(logits, "row")[0] == [[4, 4, 5]]
    # adjacent cells of one class with mass 1.5: one peak can't take its neighbour, so two
    # 4s need two separate peaks; only one exists beyond the neighbourhood, at (2, 3)
    adjacent = soft_map({(0, 0): {4: 0.8}, (0, 1): {4: 0.5}, (2, 3): {4: 0.2}})
    assert ace_peak_decode(adjacent)[0] == [[4, 4]]
    empty = soft_map({(1, 1): {2: 0.4}})  # mass 0.4 rounds to no character
    seqs, conf = ace_peak_decode(empty)
    assert seqs == [[]] and float(conf[0]) > 0.9


def test_peak_decoding_of_1d_frames_matches_greedy_on_clear_frames():
    logits = one_hot_logits([0, 3, 0, 3, 2, 0])
    assert ace_peak_decode(logits)[0] == ace_greedy_decode(logits)[0] == [[3, 3, 2]]


def test_mass_decoding_equals_greedy_on_peaky_frames():
    """Catches a mass reading that drops or doubles clear one-frame characters ("ll" too)."""
    logits = one_hot_logits([0, 3, 0, 4, 4, 0, 2])
    assert ace_mass_decode(logits)[0] == ace_greedy_decode(logits)[0] == [[3, 4, 4, 2]]
    assert 0.99 < float(ace_mass_decode(logits)[1][0]) <= 1.0


def test_mass_decoding_reads_letters_spread_over_neighbouring_frames():
    """Each letter as 0.25 in four frames: argmax reads blanks, the running sums read "2 3"; a
    mass of 2 spread over six frames is a double letter, read twice in place."""
    spread = [{2: 0.25}] * 4 + [{3: 0.25}] * 4
    logits = soft_frames(spread)
    assert ace_greedy_decode(logits)[0] == [[]]
    seqs, conf = ace_mass_decode(logits)
    assert seqs == [[2, 3]]
    # each instance: mass 0.75 in the crossing frame and its neighbours (frame 1 for 2, 5 for 3)
    assert float(conf[0]) == pytest.approx(0.75 * 0.75, abs=1e-4)
    double = soft_frames([{4: 1 / 3}] * 6 + [{2: 0.9}])
    assert ace_mass_decode(double)[0] == [[4, 4, 2]]


def test_mass_decoding_orders_by_the_interpolated_crossing_and_rounds_counts():
    """Two classes crossing 1/2 in the same frame keep the order of where inside it they cross
    (3 reaches 0.5 early in frame 1, 2 late); a class of mass 0.4 reads as nothing."""
    logits = soft_frames([{2: 0.1, 3: 0.45}, {2: 0.45, 3: 0.5}, {2: 0.45}, {5: 0.2}, {5: 0.2}])
    assert ace_mass_decode(logits)[0] == [[3, 2]]
    seqs, conf = ace_mass_decode(soft_frames([{2: 0.2}, {2: 0.2}, {}]))
    assert seqs == [[]] and float(conf[0]) == pytest.approx((0.8 + 0.8 + 1.0) / 3, abs=1e-4)


def test_mass_decoding_threshold_moves_the_rounding():
    """Mass 0.4 reads at threshold 0.3, not at 0.5; mass 1.2 reads once at 0.5 and 0.3, twice
    at 0.15; a threshold outside (0, 1] is refused."""
    logits = soft_frames([{3: 0.2}, {3: 0.2}, {}, {2: 0.6}, {2: 0.6}])
    assert ace_mass_decode(logits)[0] == [[2]]
    assert ace_mass_decode(logits, threshold=0.3)[0] == [[3, 2]]
    assert ace_mass_decode(logits, threshold=0.15)[0] == [[3, 2, 2]]
    with pytest.raises(ValueError, match="threshold must be in"):
        ace_mass_decode(logits, threshold=0.0)


def test_mass_decoding_reads_2d_maps_in_column_order():
    logits = soft_map({(0, 1): {4: 0.9}, (0, 3): {4: 0.9}, (2, 0): {5: 0.8}})
    assert ace_mass_decode(logits, "column")[0] == [[5, 4, 4]]
    assert ace_mass_decode(logits, "row")[0] == [[4, 4, 5]]


def test_ace_head_switches_decoder_and_refuses_unknown_ones():
    head = ACEHead(4, 6)
    assert head.decoder == "greedy"
    head.use_decoder("count")
    assert head.decode(soft_frames([{3: 0.6}, {3: 0.55}]))[0] == [[3]]
    head.use_decoder("mass")
    assert head.decode(soft_frames([{3: 0.3}, {3: 0.3}, {}]))[0] == [[3]]
    assert set(head.decoders) == {"greedy", "count", "peaks", "mass", "segment", "apportion"}
    with pytest.raises(ValueError, match="ACE decoder must be one of"):
        head.use_decoder("beam")


def test_ctc_collapses_repeats_but_not_across_blank():
    assert ctc_greedy_decode(one_hot_logits([3, 3, 0, 3, 2, 2]))[0] == [[3, 3, 2]]
    assert ctc_greedy_decode(one_hot_logits([0, 0]))[0] == [[]]


def test_confidence_is_product_of_kept_frames():
    logits = torch.tensor([[[0.0, 2.0], [0.0, 1.0], [5.0, 0.0]]])
    _, conf = ace_greedy_decode(logits)
    p = logits.softmax(-1)
    assert torch.allclose(conf, p[0, 0, 1] * p[0, 1, 1])


def test_2d_order_is_column_by_column_top_to_bottom():
    # 2 rows x 3 columns; cells hold classes so column order reads 1,4,2,5,3,0
    grid = [[1, 2, 3], [4, 5, 0]]
    logits = torch.full((1, 2, 3, 6), -10.0)
    for h in range(2):
        for w in range(3):
            logits[0, h, w, grid[h][w]] = 10.0
    assert ace_greedy_decode(logits)[0] == [[1, 4, 2, 5, 3]]
    assert ace_greedy_decode(logits, order="row")[0] == [[1, 2, 3, 4, 5]]
    assert flatten_2d(logits).shape == (1, 6, 6)
    with pytest.raises(ValueError, match="read order"):
        flatten_2d(logits, "diagonal")


def test_segment_decoding_equals_greedy_on_peaky_frames():
    """Clear one-frame characters, a double letter among them: one segment per letter frame."""
    logits = one_hot_logits([0, 3, 0, 4, 4, 0, 2])
    seqs, conf = ace_segment_decode(logits)
    assert seqs == ace_greedy_decode(logits)[0] == [[3, 4, 4, 2]]
    assert 0.99 < float(conf[0]) <= 1.0


def test_segment_decoding_keeps_a_letter_split_between_look_alikes():
    """'o' 0.45 / 'a' 0.4 in one frame: each class rounds to nothing, so the mass reading loses
    the letter; its letter mass is 0.85, one segment, read as the stronger class."""
    logits = soft_frames([{2: 0.9}, {3: 0.45, 4: 0.4}, {}, {5: 0.95}])
    assert ace_mass_decode(logits)[0] == [[2, 5]]
    seqs, conf = ace_segment_decode(logits)
    assert seqs == [[2, 3, 5]]
    # running letter mass 0.9 | 1.75 | 2.7: segment 1 is frame 0 (0.9 of class 2) and a little
    # of frame 1; segment 2 holds 0.75 of frame 1's 0.85 (class 3: 0.45 * 0.75 / 0.85) and 0.25
    # of frame 3's; segment 3 the remaining 0.7 of class 5: the product of the winners
    assert float(conf[0]) == pytest.approx(0.9 * (0.45 * 0.75 / 0.85) * 0.7, rel=1e-3)


def test_segment_decoding_reads_spread_letters_and_double_letters():
    """Each letter as 0.25 in four frames: two segments; a mass of 2 over six frames: "ll"."""
    spread = soft_frames([{2: 0.25}] * 4 + [{3: 0.25}] * 4)
    assert ace_greedy_decode(spread)[0] == [[]]
    assert ace_segment_decode(spread)[0] == [[2, 3]]
    double = soft_frames([{4: 1 / 3}] * 6 + [{2: 0.9}])
    assert ace_segment_decode(double)[0] == [[4, 4, 2]]


def test_segment_decoding_of_faint_and_empty_frames():
    """Letter mass under one half reads as nothing, with the mean blank probability as the
    confidence; a batch mixes empty and non-empty readings."""
    faint = soft_frames([{2: 0.2}, {3: 0.2}, {}])
    clear = soft_frames([{2: 0.97}, {}, {3: 0.98}])
    seqs, conf = ace_segment_decode(torch.cat([faint, clear]))
    assert seqs == [[], [2, 3]]
    assert float(conf[0]) == pytest.approx((0.8 + 0.8 + 1.0) / 3, abs=1e-3)


def test_segment_decoding_reads_2d_maps_in_column_order():
    """A (1, 2, 3, C) map: the letter in column 0's lower cell comes before column 2's upper."""
    probs = torch.full((1, 2, 3, 6), 1e-6)
    probs[..., 0] = 1.0
    probs[0, 1, 0, 0], probs[0, 1, 0, 4] = 1e-6, 1.0
    probs[0, 0, 2, 0], probs[0, 0, 2, 2] = 1e-6, 1.0
    assert ace_segment_decode(probs.log())[0] == [[4, 2]]
    assert ace_segment_decode(probs.log(), order="row")[0] == [[2, 4]]


def test_apportion_decoding_equals_mass_decoding_where_the_roundings_add_up():
    """Peaky frames, a doubled letter held as mass 2, a letter spread over three frames, and an
    empty map: the rounded total is the sum of the per-class roundings, so the readings agree."""
    cases = [
        soft_frames([{2: 0.98}, {}, {3: 0.97}, {3: 0.96}, {}, {4: 0.99}]),  # peaky, "ll" as 3 3
        soft_frames([{3: 0.5}, {3: 0.5}, {3: 0.5}, {3: 0.5}, {}, {2: 0.95}]),  # "ll" spread: 2.0
        soft_frames([{2: 0.3}, {2: 0.4}, {2: 0.3}, {}, {5: 0.9}]),  # a letter over three frames
        soft_frames([{}, {}, {}]),  # nothing
    ]
    for logits in cases:
        assert ace_apportion_decode(logits)[0] == ace_mass_decode(logits)[0]
    assert ace_apportion_decode(cases[0])[0] == [[2, 3, 3, 4]]
    assert ace_apportion_decode(cases[1])[0] == [[3, 3, 2]]
    assert ace_apportion_decode(cases[3])[0] == [[]]


def test_apportion_decoding_keeps_a_letter_split_between_look_alikes():
    """'o' certain twice (0.99 each), then a frame split 0.5 'o' / 0.4 '0', then '4' certain:
    class masses 2.48, 0.4 and 0.99. The mass decoder rounds each and reads "oo4", a letter short;
    the total, 3.87, says four letters: whole parts give 'o' twice, and the two left go to the
    largest remainders, '4' (0.99) and 'o' (0.48), not '0' (0.4), in the split frame's place."""
    logits = soft_frames([{2: 0.99}, {}, {2: 0.99}, {}, {2: 0.5, 3: 0.4}, {4: 0.99}])
    assert ace_mass_decode(logits)[0] == [[2, 2, 4]]
    sequences, confidence = ace_apportion_decode(logits)
    assert sequences == [[2, 2, 2, 4]]
    assert 0.0 < float(confidence[0]) <= 1.0
    # the same split alone: total 0.9 reads one letter, the stronger look-alike
    assert ace_apportion_decode(soft_frames([{}, {2: 0.5, 3: 0.4}, {}]))[0] == [[2]]
    # two weak look-alikes that add up to less than half a letter stay unread
    assert ace_apportion_decode(soft_frames([{}, {2: 0.2, 3: 0.2}, {}]))[0] == [[]]
