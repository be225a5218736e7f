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


def _changed_frames(backbone: CRNNBackbone) -> torch.Tensor:
    """Which frames' features change when only the right quarter of the image changes."""
    torch.manual_seed(0)
    image = torch.randn(1, 1, 32, 100)
    other = image.clone()
    other[..., 75:] = torch.randn(1, 1, 32, 25)
    with torch.no_grad():
        return (backbone(image) - backbone(other)).abs().amax(dim=-1)[0] > 0


def test_crnn_without_context_is_frame_local():
    """context=none: a frame on the left never sees the right of the word; with the BiLSTM
    (CRNN) every frame does. Catches a 'none' that still runs the recurrence."""
    torch.manual_seed(0)
    local = CRNNBackbone(**TINY, context="none").eval()
    assert local.out_features == 16 and not hasattr(local, "rnn")
    changed = _changed_frames(local)
    assert changed[-1] and not changed[:8].any()  # 32 px of frames, > 40 px from the change
    assert _changed_frames(CRNNBackbone(**TINY).eval()).all()


def test_crnn_residual_context_starts_frame_local_and_grows_in():
    """context=residual: local projection + BiLSTM through a zero-initialised layer, so a fresh
    model is exactly frame-local (catches a branch that adds the context from the first step)
    and a trained branch lets every frame see the whole word."""
    torch.manual_seed(0)
    backbone = CRNNBackbone(**TINY, context="residual").eval()
    image = torch.randn(2, 1, 32, 100)
    with torch.no_grad():
        features = backbone.cnn(image).mean(dim=2).transpose(1, 2)
        assert torch.equal(backbone(image), backbone.local(features))
    assert not _changed_frames(backbone)[:8].any()
    backbone.context_out.weight.data.normal_()  # as after training: the branch contributes
    assert _changed_frames(backbone).all()


def test_crnn_context_dropout_drops_whole_samples_while_training_only():
    """context_dropout: in training a dropped sample's features are its local projection alone,
    a kept one's local + context / (1 - p); in evaluation every sample keeps its context unscaled.
    Catches per-frame masks, a missing rescale and a mask left on at evaluation."""
    torch.manual_seed(0)
    backbone = CRNNBackbone(**TINY, context="residual", context_dropout=0.5)
    backbone.context_out.weight.data.normal_()
    image = torch.randn(16, 1, 32, 100)
    backbone.eval()
    with torch.no_grad():
        features = backbone.cnn(image).mean(dim=2).transpose(1, 2)
        local = backbone.local(features)
        context = backbone.context_out(backbone.rnn(features)[0])
        assert torch.allclose(backbone(image), local + context, atol=1e-6)
        backbone.train()
        for module in backbone.cnn:  # keep batch norm on the running statistics
            module.eval()
        out = backbone(image)
    dropped = (out - local).abs().amax(dim=(1, 2)) < 1e-6
    kept = (out - local - 2 * context).abs().amax(dim=(1, 2)) < 1e-5
    assert torch.equal(dropped | kept, torch.ones(16, dtype=torch.bool))
    assert 0 < int(dropped.sum()) < 16


def test_crnn_context_settings_are_checked():
    with pytest.raises(ValueError, match="context must be one of"):
        CRNNBackbone(**TINY, context="transformer")
    with pytest.raises(ValueError, match="needs context=residual"):
        CRNNBackbone(**TINY, context="bilstm", context_dropout=0.3)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        CRNNBackbone(**TINY, context="residual", context_dropout=1.0)


def test_crnn_kernel_widths_narrow_the_receptive_field():
    """Width-1 kernels in convolutions 5 and 6: one input column reaches 9 frames instead of
    CRNN's 13 (30 px of frames instead of 50), and T stays W/4. Catches padding that shifts T."""

    def reached(widths) -> list[int]:
        torch.manual_seed(0)
        backbone = CRNNBackbone(**TINY, context="none", kernel_widths=widths).eval()
        image = torch.randn(1, 1, 32, 100)
        poked = image.clone()
        poked[..., 50] += 5
        with torch.no_grad():
            out = backbone(image)
            assert out.shape == (1, 25, 16)
            return ((backbone(poked) - out).abs().amax(dim=-1)[0] > 0).nonzero().flatten().tolist()

    assert reached((3, 3, 3, 3, 3, 3)) == list(range(6, 19))
    assert reached((3, 3, 3, 3, 1, 1)) == list(range(8, 17))
    with pytest.raises(ValueError, match="kernel_widths"):
        CRNNBackbone(**TINY, kernel_widths=(3, 3, 5, 3, 3, 3))
