import pytest
import torch

from ace_str.models.decoding import ace_greedy_decode, ctc_greedy_decode, flatten_2d


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
