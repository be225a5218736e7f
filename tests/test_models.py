from functools import partial

import pytest
import torch

from ace_str.models.backbones.crnn import CRNNBackbone
from ace_str.models.heads.ace import ACEHead
from ace_str.models.recognizer import Recognizer

TINY = dict(channels=(4, 8, 8, 8, 16, 16, 16), lstm_hidden=8)


def test_crnn_one_frame_per_4px():
    model = Recognizer(CRNNBackbone(**TINY), partial(ACEHead), num_classes=37)
    for width in (100, 128, 200):
        assert model(torch.randn(2, 1, 32, width)).shape == (2, width // 4, 37)
    assert model.backbone.frames(100) == 25


def test_crnn_rgb_and_seven_convs():
    backbone = CRNNBackbone(in_channels=3, **TINY)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in backbone.modules()) == 7
    assert backbone(torch.randn(1, 3, 32, 100)).shape == (1, 25, 16)
    with pytest.raises(ValueError, match="7 convolutions"):
        CRNNBackbone(channels=(4, 8))


def test_full_size_crnn_matches_paper_scale():
    params = sum(p.numel() for p in Recognizer(CRNNBackbone(), partial(ACEHead), 37).parameters())
    assert 7e6 < params < 10e6  # CRNN is about 8.3M parameters


def test_ace_head_trains_on_one_batch():
    torch.manual_seed(0)
    model = Recognizer(CRNNBackbone(**TINY), partial(ACEHead), num_classes=5)
    images = torch.randn(2, 1, 32, 40)
    targets, lengths = torch.tensor([[1, 2, 2], [3, 4, 0]]), torch.tensor([3, 2])
    opt = torch.optim.Adam(model.parameters(), 0.05)
    first = None
    for _ in range(150):
        out = model.head.loss(model(images), targets, lengths)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["loss"].item()
    assert out["loss"].item() < first * 0.5
    # the aggregated counts fit (KL near 0) long before single frames become peaky
    assert out["ace_kl"].item() < 0.05
