"""The HCTR network of Sec. 4.2.1 and its synthetic Chinese text lines."""

from pathlib import Path

import pytest
import torch

from ace_str.build.config import compose_config
from ace_str.build.models import build_charset, build_model
from ace_str.data.charset import Charset
from ace_str.data.synth.fonts import FontError
from ace_str.data.synth.lines import SyntheticLineDataset, find_line_fonts
from ace_str.data.transforms import ResizeNormalize
from ace_str.models.backbones.hctr import HCTRBackbone, ResLSTM
from ace_str.models.heads.ace import ACEHead
from ace_str.models.recognizer import Recognizer

TINY_CHANNELS = (2, 2, 4, 4, 4, 4, 4, 4, 8, 8, 8)


def test_126x576_line_gives_71_frames():
    torch.manual_seed(0)
    backbone = HCTRBackbone(channels=TINY_CHANNELS).eval()
    with torch.no_grad():
        features = backbone(torch.randn(1, 1, 126, 576))
    assert features.shape == (1, 71, 8)
    assert backbone.frames(576) == 71


def test_paper_widths_build():
    backbone = HCTRBackbone()
    assert backbone.out_features == 512
    convs = [m for m in backbone.cnn if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 32, 128, *[256] * 5, 512, 512, 512]
    assert convs[-1].kernel_size == (2, 2)
    assert len(backbone.rnn) == 3
    with pytest.raises(ValueError, match="11 convolutions"):
        HCTRBackbone(channels=(8, 32))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_res_lstm_adds_its_input(bidirectional):
    layer = ResLSTM(6, bidirectional)
    for p in layer.lstm.parameters():
        torch.nn.init.zeros_(p)  # a zero LSTM outputs zeros: the layer is then the identity
    x = torch.randn(2, 5, 6)
    assert torch.equal(layer(x), x)


def test_tiny_width_forward_backward_with_ace():
    torch.manual_seed(0)
    model = Recognizer(HCTRBackbone(channels=TINY_CHANNELS), ACEHead, num_classes=11)
    images = torch.randn(2, 1, 126, 64)
    logits = model(images)
    assert logits.shape == (2, model.backbone.frames(64), 11) == (2, 7, 11)
    targets = torch.tensor([[1, 2, 3], [4, 4, 0]])
    losses = model.head.loss(logits, targets, torch.tensor([3, 2]))
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.backbone.cnn[0].weight.grad.abs().sum() > 0


CHINESE_DEMO = Path(__file__).parents[1] / "data/charsets/chinese_demo.txt"


def _chinese_charset() -> Charset:
    return Charset(path=CHINESE_DEMO)


def _cjk_font_or_skip() -> None:
    try:
        find_line_fonts(_chinese_charset())
    except FontError:
        pytest.skip("no CJK font: bash scripts/install_fonts.sh (fonts-wqy-microhei)")


def test_chinese_demo_charset_is_500_distinct_cjk_characters():
    charset = _chinese_charset()
    assert len(charset) == 500 == len(set(charset.symbols))
    assert all("\u4e00" <= s <= "\u9fff" for s in charset.symbols)
    assert charset.symbols[:2] == ["的", "是"]  # the two most frequent


def test_missing_glyph_is_a_font_error_naming_the_folders(tmp_path):
    with pytest.raises(FontError, match=f"need 1.*{tmp_path}"):
        # U+0378, U+0379 are unassigned: no font draws them (LastResort shares one glyph)
        find_line_fonts(Charset(symbols="\u0378\u0379"), font_dirs=[str(tmp_path)])


def test_synthetic_lines_are_reproducible_and_fit_the_charset():
    _cjk_font_or_skip()
    charset = _chinese_charset()
    transform = ResizeNormalize(64, 320, channels=1, keep_ratio=True)
    data = SyntheticLineDataset(charset, 50, seed=3, transform=transform, min_len=2, max_len=9)
    again = SyntheticLineDataset(charset, 50, seed=3, transform=transform, min_len=2, max_len=9)
    for i in (0, 7, 49):
        image, label = data[i]
        image2, label2 = again[i]
        assert label == label2 and torch.equal(image, image2)
        assert image.shape == (1, 64, 320)
        assert 2 <= len(label) <= 9 and charset.normalize(label) == label
    labels = [data.sample(i)[1] for i in range(50)]
    assert len(set(labels)) == 50
    words = set(data.words[:2000])
    # word lines are made of frequent words, so common bigrams recur; random ones rarely do
    assert any(any(label[j : j + 2] in words for j in range(len(label) - 1)) for label in labels)


def test_hctr_ace_quick_composes_with_39_frames():
    cfg = compose_config("train", ["experiment=hctr_ace_quick"])
    charset = build_charset(cfg)
    model = build_model(cfg, charset)
    assert model.num_classes == 501
    assert model.backbone.frames(cfg.data.width) == 39 >= cfg.data.max_label_length
    assert cfg.trainer.monitor == "accurate_rate"
