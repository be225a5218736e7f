"""2D recognition: the ResNet FCN's map size, column reading of a 12x13 map, the canvas
normaliser, the character counter, irregular synthetic words and the Fig. 5 pictures."""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from ace_str.build.config import compose_config
from ace_str.build.models import build_model
from ace_str.build.transform import CharCounter, CheckpointCounter, build_transform
from ace_str.data.charset import Charset
from ace_str.data.normalize2d import CanvasNormalize, canvas_scale
from ace_str.data.synth import RenderConfig, render_word
from ace_str.engine.trainer import Trainer
from ace_str.evaluation.reader import prepare_reading
from ace_str.evaluation.run import evaluate_checkpoint, prepare_evaluation
from ace_str.models.backbones.resnet_fcn import ResNetFCN
from ace_str.models.decoding import ace_greedy_decode
from ace_str.viz.maps import input_map_figure, save_map_picture
from tests.conftest import load_script
from tests.test_evaluate import write_folder

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
# A 4-channel resnet18 layout and a one-thread, few-sample run: seconds on a CPU.
TINY_2D = [
    "model.backbone.depth=18",
    "model.backbone.width=0.0625",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.synth.vocab_size=500",
    "trainer.max_steps=2",
    "trainer.max_minutes=null",
    "trainer.budget_minutes=null",
    "trainer.log_every=1",
    "trainer.ckpt_every=1000",
    "trainer.val_images=2",
    "trainer.num_threads=1",
]


def test_resnet101_fcn_maps_96x100_to_12x13():
    torch.manual_seed(0)
    backbone = ResNetFCN(depth=101, in_channels=3).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads contend on a shared 2-core machine: 10x slower
    try:
        with torch.no_grad():
            features = backbone(torch.randn(1, 3, 96, 100))
    finally:
        torch.set_num_threads(threads)
    assert features.shape == (1, 12, 13, 1024) == (1, *backbone.map_size(96, 100), 1024)
    assert backbone.out_features == 1024
    assert not hasattr(backbone, "layer4") and not hasattr(backbone, "fc")
    assert backbone.conv1.kernel_size == (3, 3) and backbone.conv1.stride == (1, 1)


def test_width_and_max_pool_options():
    narrow = ResNetFCN(depth=18, in_channels=1, width=0.25, max_pool=False)
    features = narrow(torch.randn(2, 1, 96, 100))
    assert features.shape == (2, 24, 25, 64) and narrow.map_size(96, 100) == (24, 25)
    shallow = ResNetFCN(depth=18, in_channels=3, width=0.25, blocks=[1, 1, 1])
    assert len(shallow.layer3) == 1 and shallow(torch.randn(1, 3, 96, 100)).shape == (1, 12, 13, 64)
    with pytest.raises(ValueError, match="depth"):
        ResNetFCN(depth=20)
    with pytest.raises(ValueError, match="blocks"):
        ResNetFCN(depth=18, blocks=[1, 1])


@pytest.mark.parametrize(
    ("kernels", "blocks", "field"),
    [
        ((3, 3, 3), None, 105),
        ((3, 3, 1), None, 49),
        ((3, 1, 1), None, 21),
        ((3, 3, 3), (1, 1, 1), 49),
    ],
)
def test_receptive_field_is_the_span_of_pixels_a_cell_sees(kernels, blocks, field):
    torch.manual_seed(0)
    net = ResNetFCN(
        depth=18, in_channels=1, blocks=blocks, kernel_sizes=kernels, channels=[4, 8, 8]
    )
    assert net.receptive_field() == field
    net.maxpool = torch.nn.AvgPool2d(3, stride=2, padding=1)  # same geometry; every input counts
    with torch.no_grad():  # positive weights and input: no ReLU stops a gradient
        for p in net.parameters():
            p.abs_()
    image = torch.rand(1, 1, 200, 200, requires_grad=True)
    features = net.eval()(image)
    row, col = features.shape[1] // 2, features.shape[2] // 2
    features[0, row, col].sum().backward()
    seen = (image.grad[0, 0] != 0).nonzero()
    assert (seen.max(0).values - seen.min(0).values + 1).tolist() == [field, field]
    if kernels[2] == 1:  # 1x1 convolutions where the stage's 3x3 were, strides kept
        assert net.layer3[0].conv1.kernel_size == (1, 1) and net.layer3[0].conv1.stride == (2, 2)
        assert features.shape[1:3] == net.map_size(200, 200)


def test_stage_channels_replace_the_width():
    net = ResNetFCN(depth=18, in_channels=3, channels=[16, 32, 128])
    assert net.out_features == 128 and net(torch.randn(1, 3, 96, 100)).shape == (1, 12, 13, 128)
    assert net.layer2[0].conv1.out_channels == 32
    with pytest.raises(ValueError, match="channels"):
        ResNetFCN(depth=18, channels=[16, 32])
    with pytest.raises(ValueError, match="kernel_sizes"):
        ResNetFCN(depth=18, kernel_sizes=[3, 5, 3])


def test_strided_stem_keeps_the_12x13_map_and_its_field():
    """stem_stride=2 without the max-pool: the same stride 8 and map, nothing at 96x100 after
    conv1; a stride the network cannot take is refused."""
    paper = ResNetFCN(depth=18, in_channels=1, channels=[4, 8, 8])
    strided = ResNetFCN(depth=18, in_channels=1, channels=[4, 8, 8], stem_stride=2, max_pool=False)
    assert strided.conv1.stride == (2, 2) and isinstance(strided.maxpool, torch.nn.Identity)
    assert strided.stride == paper.stride == 8
    for size in ((96, 100), (32, 100), (37, 61)):
        features = strided(torch.randn(1, 1, *size))
        assert features.shape[1:3] == strided.map_size(*size) == paper.map_size(*size)
    assert strided.receptive_field() == paper.receptive_field() - 2  # conv1 then pool: 3 + 2
    assert ResNetFCN(depth=18, in_channels=1, stem_stride=2).map_size(96, 100) == (6, 7)
    with pytest.raises(ValueError, match="stem_stride"):
        ResNetFCN(depth=18, stem_stride=4)


def test_last_stride_keeps_the_columns_of_layer2():
    """last_stride=(2, 1): 12x25 from 96x100 (the CRNN's 25 frames), rows as before; the
    weights' names are the paper layout's, and a stride the network cannot take is refused."""
    base = ResNetFCN(depth=18, in_channels=1, channels=[4, 8, 8], stem_stride=2, max_pool=False)
    wide = ResNetFCN(
        depth=18,
        in_channels=1,
        channels=[4, 8, 8],
        stem_stride=2,
        max_pool=False,
        last_stride=[2, 1],
    )
    assert wide.strides == (8, 4) and base.strides == (8, 8)
    for size, expected in (((96, 100), (12, 25)), ((32, 100), (4, 25)), ((37, 61), (5, 16))):
        features = wide(torch.randn(1, 1, *size))
        assert features.shape[1:3] == wide.map_size(*size) == expected
        assert wide.map_size(*size)[0] == base.map_size(*size)[0]
    assert wide.layer3[0].conv1.stride == (2, 1) and wide.layer3[0].downsample[0].stride == (2, 1)
    assert wide.state_dict().keys() == base.state_dict().keys()
    for bad in ([2], [3, 1], [2, 0]):
        with pytest.raises(ValueError, match="last_stride"):
            ResNetFCN(depth=18, last_stride=bad)


def test_map_context_starts_as_the_identity_then_joins_far_cells():
    """context_layers: the FCN's map unchanged at initialisation (the same weights without the
    context give the same features, 12x13 and the stage's 4x13); once its branches are nonzero,
    a cell's output depends on a cell far outside its field, and the learned row and column
    embeddings tell identical cells apart. Sizes and heads it cannot take are refused."""
    torch.manual_seed(0)
    kwargs = dict(depth=18, in_channels=1, channels=[4, 8, 16], stem_stride=2, max_pool=False)
    with_context = ResNetFCN(**kwargs, context_layers=1, context_heads=2).eval()
    plain = ResNetFCN(**kwargs).eval()
    state = {k: v for k, v in with_context.state_dict().items() if not k.startswith("context.")}
    plain.load_state_dict(state)
    for size in ((96, 100), (32, 100)):
        images = torch.randn(2, 1, *size)
        assert torch.equal(with_context(images), plain(images))

    context = with_context.context
    for layer in context.layers:
        torch.nn.init.normal_(layer.self_attn.out_proj.weight, std=0.5)
    features = torch.randn(1, 12, 13, 16)
    moved = features.clone()
    moved[0, 11, 12] = torch.randn(16)  # the far corner (a shift alone, LayerNorm removes)
    with torch.no_grad():
        assert not torch.allclose(context(features)[0, 0, 0], context(moved)[0, 0, 0])
        torch.nn.init.normal_(context.rows)
        torch.nn.init.normal_(context.cols)
        same = context(torch.ones(1, 12, 13, 16))
    assert not torch.allclose(same[0, 0, 0], same[0, 5, 7])

    with pytest.raises(ValueError, match="max_size"):
        context(torch.randn(1, 65, 2, 16))
    with pytest.raises(ValueError, match="heads"):
        ResNetFCN(**kwargs, context_layers=1, context_heads=3)
    with pytest.raises(ValueError, match="context_layers"):
        ResNetFCN(**kwargs, context_layers=-1)


def test_row_context_starts_as_the_identity_then_joins_a_row_only():
    """row_context: the FCN's map unchanged at initialisation; once the projection is nonzero a
    cell hears the far end of its own row and nothing of another row, and the gradient reaches
    the BiLSTM through it. A negative size is refused."""
    torch.manual_seed(0)
    kwargs = dict(depth=18, in_channels=1, channels=[4, 8, 16], stem_stride=2, max_pool=False)
    with_rows = ResNetFCN(**kwargs, row_context=6).eval()
    plain = ResNetFCN(**kwargs).eval()
    plain.load_state_dict(
        {k: v for k, v in with_rows.state_dict().items() if not k.startswith("row_context.")}
    )
    for size in ((96, 100), (32, 100)):
        images = torch.randn(2, 1, *size)
        assert torch.equal(with_rows(images), plain(images))

    rows = with_rows.row_context
    torch.nn.init.normal_(rows.out.weight)
    features = torch.randn(1, 12, 13, 16)
    moved = features.clone()
    moved[0, 3, 12] = torch.randn(16)  # the far end of row 3
    with torch.no_grad():
        before, after = rows(features), rows(moved)
    assert not torch.allclose(before[0, 3, 0], after[0, 3, 0])
    assert torch.equal(before[0, 4], after[0, 4])  # another row hears nothing

    features.requires_grad_(True)
    rows(features).sum().backward()
    assert rows.rnn.weight_ih_l0.grad is not None and rows.rnn.weight_ih_l0.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="row_context"):
        ResNetFCN(**kwargs, row_context=-1)


def test_12x13_map_reads_column_by_column():
    logits = torch.full((1, 12, 13, 5), -10.0)
    logits[..., 0] = 10.0  # blank everywhere ...
    for (row, col), cls in {(9, 1): 3, (2, 1): 1, (0, 6): 2, (11, 12): 4, (5, 6): 4}.items():
        logits[0, row, col, 0], logits[0, row, col, cls] = -10.0, 10.0
    assert ace_greedy_decode(logits, "column")[0] == [[1, 3, 2, 4, 4]]
    assert ace_greedy_decode(logits, "row")[0] == [[2, 1, 4, 3, 4]]


def test_canvas_fits_keeping_aspect_ratio_and_centres():
    normalize = CanvasNormalize(height=96, width=100, channels=1)
    assert normalize.content_box(50, 20, None) == (0, 28, 100, 40)
    assert normalize.content_box(30, 90, None) == (34, 0, 32, 96)
    canvas = normalize(Image.new("L", (50, 20), 255))
    assert canvas.shape == (1, 96, 100)
    assert torch.all(canvas[:, 28:68] == 1.0) and torch.all(canvas[:, :28] == 0)
    assert torch.all(canvas[:, 68:] == 0)
    stretched = CanvasNormalize(channels=3, keep_ratio=False)(Image.new("RGB", (50, 20), "white"))
    assert torch.all(stretched == 1.0)


def test_text_height_cap_shrinks_only_tall_text():
    capped = CanvasNormalize(height=96, width=100, channels=1, max_text_height=40)
    # 50x40 would fit at 100x80; the cap keeps it 40 rows high (50 columns), centred
    assert capped.content_box(50, 40, None) == (25, 28, 50, 40)
    # a long word (100x25 fitted) is under the cap: placed exactly as without it
    assert capped.content_box(200, 50, None) == CanvasNormalize(channels=1).content_box(
        200, 50, None
    )
    canvas = capped(Image.new("L", (50, 40), 255))
    assert torch.all(canvas[:, 28:68, 25:75] == 1.0)
    assert canvas.abs().sum() == 40 * 50  # nothing outside the box
    # with a counter the cap still bounds the height
    assert canvas_scale(30, 60, (96, 100), 1, 48.0, max_text_height=40) == pytest.approx(40 / 60)
    # without keep_ratio nothing is capped: the image fills the canvas
    stretched = CanvasNormalize(channels=1, keep_ratio=False, max_text_height=40)
    assert stretched.content_box(50, 40, None) == (0, 0, 100, 96)
    with pytest.raises(ValueError, match="max_text_height"):
        CanvasNormalize(channels=1, max_text_height=0)


def test_margin_widens_the_sides_with_their_edge_pixels():
    pixels = np.zeros((20, 40), dtype=np.uint8)
    pixels[:, 0], pixels[:, -1], pixels[5, 0] = 255, 128, 7
    widened = CanvasNormalize(channels=1, margin=0.25).widen(Image.fromarray(pixels, "L"))
    assert widened.size == (50, 20)  # 5 columns (0.25 of 20 rows) on each side
    out = np.asarray(widened)
    assert np.all(out[:, :6] == pixels[:, :1]) and np.all(out[:, -6:] == 128)
    assert np.array_equal(out[:, 5:45], pixels)  # the crop itself is untouched
    rgb = CanvasNormalize(channels=3, margin=0.1).widen(Image.new("RGB", (30, 10), (1, 2, 3)))
    assert rgb.size == (32, 10) and rgb.getpixel((0, 9)) == (1, 2, 3)
    # placed as the wider image: 50x20 fits the canvas at 100x40
    normalize = CanvasNormalize(height=96, width=100, channels=1, margin=0.25)
    pixels[5, 0] = 255
    canvas = normalize(Image.fromarray(pixels, "L"))
    assert torch.all(canvas[:, 28:68, :10] == 1.0)  # the white left edge, repeated
    assert canvas[:, :28].abs().sum() == 0
    unchanged = CanvasNormalize(channels=1)
    assert unchanged.widen(image := Image.fromarray(pixels, "L")) is image
    with pytest.raises(ValueError, match="margin"):
        CanvasNormalize(channels=1, margin=-0.1)


def test_min_aspect_stretches_narrow_crops_before_the_margin():
    pixels = np.zeros((20, 20), dtype=np.uint8)
    pixels[:, :10] = 255  # the left half white
    normalize = CanvasNormalize(height=96, width=100, channels=1, min_aspect=2.0, margin=0.25)
    stretched = normalize.stretch(Image.fromarray(pixels, "L"))
    assert stretched.size == (40, 20)  # 2.0 times its 20 rows
    out = np.asarray(stretched)
    assert np.all(out[:, :19] == 255) and np.all(out[:, 21:] == 0)  # halves kept, wider
    wide = Image.new("L", (50, 20))
    assert normalize.stretch(wide) is wide  # already wider than 2.0: untouched
    # stretched to 40x20, then 5 edge columns each side: 50x20, placed at 100x40
    canvas = normalize(Image.fromarray(pixels, "L"))
    assert torch.all(canvas[:, 28:68, :46] == 1.0) and torch.all(canvas[:, 28:68, 54:] == -1.0)
    assert canvas[:, :28].abs().sum() == 0
    assert CanvasNormalize(channels=1).stretch(image := Image.new("L", (5, 20))) is image
    with pytest.raises(ValueError, match="min_aspect"):
        CanvasNormalize(channels=1, min_aspect=-1.0)


def test_counter_scale_gives_each_character_char_size():
    # 200x40 with 10 characters: 800 px^2 each, so 24 px per character side means 24/sqrt(800)
    assert canvas_scale(200, 40, (96, 100), 10, 24.0) == pytest.approx(0.5)  # fit wins
    assert canvas_scale(60, 30, (96, 100), 2, 24.0) == pytest.approx(24 / 30)
    assert canvas_scale(60, 30, (96, 100), None, 24.0) == pytest.approx(100 / 60)


def test_counter_experiment_trains_and_drives_the_normaliser(tmp_path):
    cfg = compose_config("train", ["experiment=char_counter_quick", *TINY_2D])
    trainer = Trainer(cfg, tmp_path)
    trainer.fit()
    assert trainer.step == 2
    counter = CharCounter(tmp_path / "last.ckpt")
    image = render_word("hello", FONT, random.Random(0), RenderConfig())
    assert 1 <= counter(image) <= cfg.data.max_label_length
    normalize = CanvasNormalize(channels=3, counter=CheckpointCounter(tmp_path / "last.ckpt"))
    left, top, w, h = normalize.content_box(*image.size, normalize.count(image))
    assert normalize(image).shape == (3, 96, 100) and w <= 100 and h <= 96
    # the config key becomes a counter that pickles as its path (each worker loads its own)
    recognizer = compose_config(
        "train",
        [
            "experiment=resnet2d_ace_quick",
            f"data.transform.counter_checkpoint={tmp_path}/last.ckpt",
        ],
    )
    built = build_transform(recognizer)
    assert built.count(image) == counter(image)
    copied = pickle.loads(pickle.dumps(built))
    assert copied.counter._counter is None and copied.count(image) == counter(image)


def test_2d_experiment_smoke_run_and_show_2d_script(tmp_path, capsys):
    cfg = compose_config(
        "train",
        ["experiment=resnet2d_ace_quick", *TINY_2D, "data.val_synth_size=4", "trainer.val_every=2"]
        + ["data.inference_max_text_height=44", "data.inference_margin=0.1"]
        + ["data.inference_min_aspect=1.5"],
    )
    metrics = Trainer(cfg, tmp_path).fit()
    assert 0.0 <= metrics["synth_val/word_accuracy"] <= 1.0
    assert build_transform(cfg).max_text_height is None  # training and validation: uncapped
    assert build_transform(cfg).margin == 0.0  # and synthetic words keep their own margins
    assert build_transform(cfg).min_aspect == 0.0  # and their own proportions
    show_2d = load_script("show_2d")
    word = tmp_path / "word.png"
    render_word("curve", FONT, random.Random(1), RenderConfig(curve_prob=1.0)).save(word)
    show_2d.main(
        ["--checkpoint", str(tmp_path / "last.ckpt"), "--images", str(word)]
        + ["--out", str(tmp_path / "maps")]
    )
    (picture,) = (tmp_path / "maps").glob("*.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sheet = tmp_path / "rendered" / "sheet.png"
    show_2d.main(
        ["--checkpoint", str(tmp_path / "last.ckpt"), "--words", "ab", "cd"]
        + ["--out", str(tmp_path / "rendered"), "--sheet", str(sheet)]
    )
    pictures = sorted((tmp_path / "rendered").glob("0*_map.png"))
    assert [p.name for p in pictures] == ["000_ab_map.png", "001_cd_map.png"]
    with Image.open(sheet) as stacked, Image.open(pictures[0]) as one:
        assert stacked.size == (one.width, 2 * one.height)
    with pytest.raises(SystemExit):
        show_2d.main(["--checkpoint", str(tmp_path / "last.ckpt")])  # neither images nor words
    map_stats = load_script("map_stats")
    map_stats.main(["--checkpoint", str(tmp_path / "last.ckpt"), "--samples", "3"])
    printed = capsys.readouterr().out
    assert "3 images of synth_val, 156 cells" in printed and "char_cells_in_label" in printed
    write_folder(tmp_path / "crops", ["AB!", "c-d"])  # --data: a labelled folder, not validation
    map_stats.main(["--checkpoint", str(tmp_path / "last.ckpt"), "--data", str(tmp_path / "crops")])
    printed = capsys.readouterr().out
    assert f"2 images of {tmp_path / 'crops'}, 156 cells" in printed
    # labels as the model reads them: "ab", "cd" (case-folded, punctuation dropped)
    assert re.search(r"label_length\s+mean 2\.0000", printed), printed
    assert "mass_in_sure_cells" in printed
    # evaluate.py reads real crops at the run's inference cap (training: none), or at another
    # one given: its own tables
    plain = [f"checkpoint={tmp_path / 'last.ckpt'}", f"data.root={tmp_path}"]
    run_default = prepare_evaluation(compose_config("evaluate", plain)).transform
    chosen = (run_default.max_text_height, run_default.margin, run_default.min_aspect)
    assert chosen == (44, 0.1, 1.5)
    cfg = compose_config(
        "evaluate",
        [f"checkpoint={tmp_path / 'last.ckpt'}", f"data.root={tmp_path}", "max_text_height=40"]
        + ["margin=0.2", "min_aspect=2", "data.num_workers=0", "benchmarks=[crops]"]
        + [f"output_dir={tmp_path / 'eval'}"],
    )
    given = prepare_evaluation(cfg).transform
    assert (given.max_text_height, given.margin, given.min_aspect) == (40, 0.2, 2.0)
    rows = evaluate_checkpoint(cfg)
    assert rows["crops"]["samples"] == 2
    tables = f"eval_last_{tmp_path.name}_standard_cap40_margin0p2_aspect2.md"
    assert (tmp_path / "eval" / tables).is_file()
    read = compose_config(
        "read",
        [f"checkpoint={tmp_path / 'last.ckpt'}", f"images={word}"]
        + ["max_text_height=32", "margin=0", "min_aspect=0"],
    )
    reading = prepare_reading(read).transform
    assert (reading.max_text_height, reading.margin) == (32, 0)  # margin=0 overrides the run's
    assert reading.min_aspect == 0  # and min_aspect=0 the run's stretch


def test_text_height_cap_is_refused_for_a_1d_model(tiny_config, tmp_path):
    Trainer(tiny_config("trainer.max_steps=1"), tmp_path).fit()
    cfg = compose_config(
        "evaluate", [f"checkpoint={tmp_path / 'last.ckpt'}", "data.root=x", "max_text_height=40"]
    )
    with pytest.raises(ValueError, match="max_text_height=40: .*not a 2D canvas"):
        prepare_evaluation(cfg)
    cfg = compose_config(
        "evaluate", [f"checkpoint={tmp_path / 'last.ckpt'}", "data.root=x", "margin=0.1"]
    )
    with pytest.raises(ValueError, match="margin=0.1: .*not a 2D canvas"):
        prepare_evaluation(cfg)
    cfg = compose_config(
        "evaluate", [f"checkpoint={tmp_path / 'last.ckpt'}", "data.root=x", "min_aspect=2"]
    )
    with pytest.raises(ValueError, match="min_aspect=2: .*not a 2D canvas"):
        prepare_evaluation(cfg)


def test_map_stats_tells_a_spread_map_from_a_localised_one():
    """Both maps have the label's counts as their mean (Eq. 8 cannot tell them apart)."""
    stats = load_script("map_stats").map_stats
    symbols, label, cells = "abc", "ab", 10
    spread = torch.zeros(cells, 4)
    spread[:, 0], spread[:, 1], spread[:, 2] = 0.8, 0.1, 0.1
    local = torch.zeros(cells, 4)
    local[:, 0] = 1.0
    local[3] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # "a" in one cell, "b" in another
    local[7] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    assert torch.allclose(spread.mean(0), local.mean(0))
    a, b = stats(spread, label, symbols), stats(local, label, symbols)
    assert a["char_cells"] == 0 and a["mass_in_char_cells"] == 0
    assert a["max_char_prob"] == pytest.approx(0.1)
    assert b["char_cells"] == 2 and b["char_cells_in_label"] == 2 and b["label_length"] == 2
    assert b["max_char_prob"] == 1.0 and b["mass_in_char_cells"] == 1.0
    assert a["mass_in_sure_cells"] == 0 and b["mass_in_sure_cells"] == 1.0
    local[7] = torch.tensor([0.1, 0.0, 0.0, 0.9])  # a confident cell reading "c", not in the label
    assert stats(local, label, symbols)["char_cells_in_label"] == 1
    sure = stats(local, label, symbols)["mass_in_sure_cells"]
    assert sure == pytest.approx(1 / 1.9)  # 0.9 is not above 0.9: only "a"'s cell is sure


def test_map_picture_is_a_png_and_figure_has_its_panels(tmp_path):
    cfg = compose_config("train", ["experiment=resnet2d_ace_quick", *TINY_2D])
    charset = Charset(preset="lower36")
    model = build_model(cfg, charset)
    transform = build_transform(cfg)
    image = render_word("map", FONT, random.Random(2), RenderConfig())
    path = save_map_picture(model, charset, image, transform, tmp_path / "sub" / "map.png")
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.width > saved.height
    figure = input_map_figure(model, charset, transform(image))
    assert [ax.get_title() for ax in figure.axes[:3]] == [
        "input 96x100",
        "12x13 argmax map",
        "map over input",
    ]


@pytest.mark.parametrize("kind", ["arc", "wave"])
def test_curved_words_are_deterministic_and_curved(kind):
    flat = RenderConfig(
        rotation_prob=0, perspective_prob=0, blur_prob=0, noise_prob=0, lowres_prob=0
    )
    curved = RenderConfig(**{**flat.__dict__, "curve_prob": 1.0, "curves": {kind: 1.0}})
    first = render_word("irregular", FONT, random.Random(5), curved)
    again = render_word("irregular", FONT, random.Random(5), curved)
    straight = render_word("irregular", FONT, random.Random(5), flat)
    assert first.tobytes() == again.tobytes()
    assert first.width == straight.width and first.height > straight.height


def test_curves_off_by_default_and_validated():
    assert RenderConfig().curve_prob == 0.0
    with pytest.raises(ValueError, match="curves"):
        RenderConfig(curves={"spiral": 1.0})


def test_collapsed_height_reads_columns_and_warm_starts_the_cells(tmp_path):
    """head.collapse_height trains Eq. 8 on the W columns (each the mean of its cells' logits);
    trainer.init_weights then carries every weight into the same model reading all H x W cells,
    whose column means are the collapsed model's logits."""
    columns = compose_config("train", ["experiment=resnet2d_ace_quick", *TINY_2D])
    columns.head.collapse_height = True
    source = Trainer(columns, tmp_path / "columns")
    source.fit()
    images = torch.randn(2, 3, 96, 100)
    source.model.eval()
    with torch.no_grad():
        column_logits = source.model(images)
    assert column_logits.shape == (2, 13, source.model.num_classes)
    assert source.model.head.label_capacity(column_logits) == 13

    ckpt = tmp_path / "columns" / "last.ckpt"
    cells = compose_config(
        "train", ["experiment=resnet2d_ace_quick", *TINY_2D, f"init_weights={ckpt}"]
    )
    assert not cells.head.collapse_height
    warm = Trainer(cells, tmp_path / "cells")
    warm.resume()
    assert warm.step == 0
    src, dst = source.model.state_dict(), warm.model.state_dict()
    assert src.keys() == dst.keys() and all(torch.equal(src[k], dst[k]) for k in src)
    warm.model.eval()
    with torch.no_grad():
        cell_logits = warm.model(images)
    assert cell_logits.shape == (2, 12, 13, warm.model.num_classes)
    torch.testing.assert_close(cell_logits.mean(dim=1), column_logits)


def test_collapse_height_leaves_1d_frames_alone():
    from ace_str.models.heads.ace import ACEHead

    head = ACEHead(in_features=8, num_classes=5, collapse_height=True)
    frames = torch.randn(3, 7, 8)
    assert torch.equal(head(frames), head.classifier(frames))
    cells = torch.randn(3, 4, 7, 8)
    torch.testing.assert_close(head(cells), head.classifier(cells).mean(dim=1))


def test_nhwc_is_kept_off_where_its_cpu_backward_crashed(caplog):
    """A 4-channel FCN (the tests' tiny model) in NHWC crashed the process in backward on the
    CPU: the trainer keeps such a model in NCHW and says so; the recipes' 16+ channels keep NHWC."""
    from ace_str.engine.trainer import nhwc_trains_safely

    cpu = torch.device("cpu")
    assert not nhwc_trains_safely(ResNetFCN(depth=18, in_channels=3, width=0.0625), cpu)
    assert "channels_last ignored" in caplog.text
    assert nhwc_trains_safely(ResNetFCN(depth=18, in_channels=3, width=0.25), cpu)


def test_canvas_heights_bins_readings_by_fitted_height(tmp_path):
    heights = load_script("canvas_heights")
    assert [heights.height_bin(h) for h in (10, 24, 40, 63.9, 96)] == [
        "<24",
        "24-32",
        "32-48",
        "48-64",
        ">=64",
    ]
    images = tmp_path / "set" / "images"
    images.mkdir(parents=True)
    Image.new("L", (200, 40)).save(images / "long.png")  # fitted 100x20
    Image.new("L", (60, 40)).save(images / "short.png")  # fitted 100x67
    runs = []
    for name, right in (("a", "10"), ("b", "11")):
        path = tmp_path / f"{name}.tsv"
        path.write_text(
            "path_or_index\ttruth\tprediction\tconfidence\tcorrect\n"
            f'images/long.png\tab"c\tabc\t0.9\t{right[0]}\n'
            f"images/short.png\tab\tab\t0.9\t{right[1]}\n",
            encoding="utf-8",
        )
        runs.append(path)
    table = heights.table(tmp_path / "set", runs, ["a", "b"])
    assert "| <24 | 1 | 100.00 | 100.00 |" in table
    assert "| >=64 | 1 | 0.00 | 100.00 |" in table
    assert "| all | 2 | 50.00 | 100.00 |" in table
    by_aspect = heights.table(tmp_path / "set", runs, ["a", "b"], by="aspect")
    assert "| crop width / height | samples |" in by_aspect
    assert "| 1-2 | 1 | 0.00 | 100.00 |" in by_aspect  # short.png, 60 / 40
    assert "| >=3 | 1 | 100.00 | 100.00 |" in by_aspect  # long.png, 200 / 40
    with pytest.raises(FileNotFoundError, match="missing.png"):
        runs[0].write_text(
            "path_or_index\ttruth\tprediction\tconfidence\tcorrect\nimages/missing.png\ta\ta\t1\t1\n"
        )
        heights.table(tmp_path / "set", runs[:1], ["a"])
