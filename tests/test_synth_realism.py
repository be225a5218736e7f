"""The renderer's realism effects: off by default without a single extra random draw, each one
visible when on, and the data=synth_real preset that turns them on."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
from pathlib import Path

import matplotlib
import numpy as np
import PIL
import pytest
from hydra.utils import instantiate
from PIL import Image, features

from ace_str.build.config import compose_config
from ace_str.data.charset import Charset
from ace_str.data.synth import RenderConfig, SyntheticWordDataset, render_word
from ace_str.data.synth.config import BACKGROUNDS
from ace_str.data.synth.fonts import font_problem, required_symbols
from tests.conftest import load_script

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"

# Every probability the realism effects added, and the parameters each one reads.
NEW_PROBABILITIES = (
    "vivid_prob",
    "plain_text_prob",
    "neighbour_prob",
    "tight_crop_prob",
    "outline_prob",
    "shadow_prob",
    "text_texture_prob",
    "shading_prob",
    "motion_blur_prob",
    "jpeg_prob",
)
# Effects a 2D canvas asks for and the 1D preset leaves off (its crops are stretched anyway).
CANVAS_PROBABILITIES = ("width_scale_prob",)
OTHER_PARAMETERS = dict(
    neighbour_sides={"left": 1.0, "above": 1.0},
    neighbour_chars=(4, 6),
    neighbour_gap=(0.9, 1.0),
    neighbour_visible=(0.5, 0.6),
    neighbour_line_spacing=(1.5, 1.6),
    tight_crop=(0.2, 0.3),
    outline_width=(0.2, 0.3),
    shadow_offset=(0.3, 0.4),
    shadow_blur=(0.2, 0.3),
    shadow_opacity=(0.1, 0.2),
    text_texture_variation=90,
    shading_strength=(0.8, 0.9),
    motion_blur_sizes=(5,),
    jpeg_quality=(5, 6),
    width_scale=(0.5, 0.6),
)
# A plain config: flat background, no geometry or camera effects, so a change is the effect's.
PLAIN = dict(
    backgrounds={"flat": 1.0},
    padding=(0.2, 0.2),
    rotation_prob=0.0,
    perspective_prob=0.0,
    blur_prob=0.0,
    noise_prob=0.0,
    lowres_prob=0.0,
)


def render(seed: int, text: str = "Hello42", **fields) -> tuple[Image.Image, random.Random]:
    rng = random.Random(seed)
    return render_word(text, FONT, rng, RenderConfig(**fields), symbols="abcXYZ019"), rng


def pixels(image: Image.Image) -> tuple:
    return image.size, image.tobytes()


def test_new_parameters_are_ignored_while_their_probability_is_zero():
    """Other ranges, same pixels and the same generator state: nothing drawn, nothing read."""
    assert all(
        getattr(RenderConfig(), name) == 0.0 for name in NEW_PROBABILITIES + CANVAS_PROBABILITIES
    )
    for seed in range(12):
        default, rng_a = render(seed)
        changed, rng_b = render(seed, **OTHER_PARAMETERS)
        assert pixels(default) == pixels(changed)
        assert rng_a.getstate() == rng_b.getstate()


# sha256 over 20 renders of "Hello42" in DejaVuSans (RenderConfig with flat, gradient and noise
# backgrounds at equal weight, seeds 0..19) and the generator's next number after each, made by
# the renderer before the realism effects existed, with Pillow 13.0.0 and its FreeType 2.14.3.
BEFORE_EFFECTS = "f62b3ec86199661c638611615d8b699c35e541b97c9883ebefa9fee280f95616"
RECORDED_WITH = ("13.0.0", "2.14.3")
# The same renders, coarsely: width, height, mean and standard deviation of the grey levels, and
# the generator's next number (which no rasterizer touches). Taken where the hash above matched,
# so they are the pre-effects renderer's too.
BEFORE_EFFECTS_COARSE = [
    (167, 51, 170.7, 32.0, 0.9021659504395827),
    (129, 34, 98.8, 41.6, 0.7258526014465152),
    (113, 33, 185.4, 37.8, 0.5598903162914775),
    (150, 34, 145.5, 35.8, 0.38760858561195044),
    (144, 39, 110.8, 31.6, 0.2804332116162187),
    (193, 55, 120.6, 55.3, 0.20848339304879704),
    (191, 43, 102.5, 45.5, 0.5168725569156065),
    (159, 45, 66.6, 26.6, 0.18072637992393747),
    (142, 40, 139.9, 32.2, 0.72600193406441),
    (173, 47, 104.1, 28.7, 0.054173203334171305),
    (179, 55, 132.2, 27.5, 0.46997396696354576),
    (181, 49, 135.5, 31.7, 0.842427128518532),
    (173, 45, 125.2, 34.7, 0.26156373587507886),
    (150, 47, 109.9, 38.1, 0.5641385986016807),
    (129, 34, 148.0, 34.4, 0.5859436250700332),
    (136, 52, 142.0, 32.7, 0.7768887792793958),
    (157, 35, 107.0, 32.7, 0.08594043811992214),
    (179, 41, 90.2, 28.3, 0.8017939847349216),
    (131, 39, 117.2, 19.6, 0.14352995407275504),
    (122, 31, 102.3, 35.2, 0.7919630232235252),
]


def test_default_pixels_and_draws_match_the_renderer_before_the_effects():
    """The default path renders as before the effects and draws exactly as many numbers.

    Catches an effect that draws, or changes a pixel, while its probability is 0. The draws
    are checked exactly everywhere; the pixels exactly (sha256) with the Pillow and FreeType
    that recorded them, and elsewhere, where glyph rasterization may differ a little, by size
    (2 px) and grey-level mean and spread (3 levels), which a changed background, colour or
    scale moves by more.
    """
    cfg = RenderConfig(backgrounds={"flat": 1, "gradient": 1, "noise": 1})
    parts = []
    for seed, (width, height, mean, spread, draw) in enumerate(BEFORE_EFFECTS_COARSE):
        rng = random.Random(seed)
        image = render_word("Hello42", FONT, rng, cfg)
        following = rng.random()
        assert following == draw, (
            f"seed {seed}: another number of random draws than before the effects"
        )
        assert abs(image.width - width) <= 2 and abs(image.height - height) <= 2, seed
        grey = np.asarray(image.convert("L"), dtype=np.float64)
        assert abs(grey.mean() - mean) <= 3 and abs(grey.std() - spread) <= 3, seed
        parts.append(f"{hashlib.sha256(image.tobytes()).hexdigest()}:{following}")
    if (PIL.__version__, features.version("freetype2")) == RECORDED_WITH:
        assert hashlib.sha256("".join(parts).encode()).hexdigest() == BEFORE_EFFECTS


@pytest.mark.parametrize(
    "name, extra",
    [
        ("vivid_prob", {}),
        ("plain_text_prob", {}),
        ("neighbour_prob", {}),
        ("tight_crop_prob", {}),
        ("outline_prob", {}),
        ("shadow_prob", {}),
        ("text_texture_prob", {}),
        ("shading_prob", {}),
        ("motion_blur_prob", {}),
        ("jpeg_prob", {}),
        ("width_scale_prob", {}),
    ],
)
def test_each_effect_changes_the_image_only_when_on(name, extra):
    for seed in range(3):
        off, _ = render(seed, **PLAIN, **{name: 0.0})
        base, _ = render(seed, **PLAIN)
        on, _ = render(seed, **PLAIN, **{name: 1.0}, **extra)
        assert pixels(off) == pixels(base)
        assert pixels(on) != pixels(off)


def test_left_neighbour_puts_cut_text_at_the_left_edge():
    for seed in range(5):
        plain, _ = render(seed, **PLAIN)
        cut, _ = render(seed, **PLAIN, neighbour_prob=1.0, neighbour_sides={"left": 1.0})
        plain_px, cut_px = np.asarray(plain), np.asarray(cut)
        assert (plain_px[:, :2] == plain_px[0, -1]).all()  # a bare margin without neighbours
        assert (cut_px[:, :2] != cut_px[0, -1]).any()  # ink of the fragment at the crop edge


def test_neighbour_lines_above_and_below_enlarge_the_crop():
    for seed in range(5):
        plain, _ = render(seed, **PLAIN)
        lines, _ = render(
            seed, **PLAIN, neighbour_prob=1.0, neighbour_sides={"above": 1.0, "below": 1.0}
        )
        assert lines.height > plain.height and lines.width == plain.width


def test_tight_crop_cuts_into_the_word():
    for seed in range(5):
        plain, _ = render(seed, **PLAIN)
        tight, _ = render(seed, **PLAIN, tight_crop_prob=1.0, tight_crop=(0.05, 0.05))
        assert tight.width < plain.width and tight.height < plain.height


def test_width_scale_condenses_or_expands_the_lettering():
    for seed in range(3):
        plain, _ = render(seed, **PLAIN)
        for factor in (0.5, 2.0):
            scaled, _ = render(seed, **PLAIN, width_scale_prob=1.0, width_scale=(factor, factor))
            assert scaled.size == (round(plain.width * factor), plain.height)
    with pytest.raises(ValueError, match="width_scale"):
        RenderConfig(width_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="width_scale"):
        RenderConfig(width_scale=(1.5, 0.8))


def test_outline_adds_a_third_colour_and_stroke_room():
    for seed in range(5):
        plain, _ = render(seed, **PLAIN, font_size=(40, 40))
        outlined, _ = render(
            seed, **PLAIN, font_size=(40, 40), outline_prob=1.0, outline_width=(0.1, 0.1)
        )
        assert outlined.width == plain.width + 8  # a 4-pixel stroke on each side
        assert len(outlined.getcolors(1 << 16)) > 2


def test_jpeg_output_decodes_and_keeps_the_size():
    for seed in range(5):
        plain, _ = render(seed, **PLAIN)
        jpeg, _ = render(seed, **PLAIN, jpeg_prob=1.0, jpeg_quality=(15, 15))
        assert jpeg.mode == "RGB" and jpeg.size == plain.size
        assert pixels(jpeg) != pixels(plain)
        buffer = io.BytesIO()
        jpeg.save(buffer, format="PNG")
        assert Image.open(io.BytesIO(buffer.getvalue())).size == plain.size


@pytest.mark.parametrize("kind", ["texture", "stripes", "blocks"])
def test_new_backgrounds_render(kind):
    assert kind in BACKGROUNDS
    images = [render(seed, **{**PLAIN, "backgrounds": {kind: 1.0}})[0] for seed in range(6)]
    flats = [render(seed, **PLAIN)[0] for seed in range(6)]
    for image, flat in zip(images, flats, strict=True):
        assert image.mode == "RGB" and image.size == flat.size
    assert any(
        len(image.getcolors(1 << 16)) > len(flat.getcolors(1 << 16))
        for image, flat in zip(images, flats, strict=True)
    )


def test_every_effect_at_once_with_geometry_and_camera():
    everything = {name: 1.0 for name in NEW_PROBABILITIES}
    for seed in range(5):
        image, _ = render(
            seed,
            **everything,
            backgrounds={k: 1.0 for k in BACKGROUNDS},
            rotation_prob=1.0,
            perspective_prob=1.0,
            curve_prob=1.0,
            blur_prob=1.0,
            noise_prob=1.0,
            lowres_prob=1.0,
            height=32,
        )
        again, _ = render(
            seed,
            **everything,
            backgrounds={k: 1.0 for k in BACKGROUNDS},
            rotation_prob=1.0,
            perspective_prob=1.0,
            curve_prob=1.0,
            blur_prob=1.0,
            noise_prob=1.0,
            lowres_prob=1.0,
            height=32,
        )
        assert image.mode == "RGB" and image.height == 32
        assert pixels(image) == pixels(again)


@pytest.mark.parametrize(
    "bad",
    [
        {"jpeg_prob": 1.5},
        {"shadow_prob": -0.1},
        {"neighbour_sides": {"diagonal": 1.0}},
        {"motion_blur_sizes": (7,)},
        {"jpeg_quality": (70, 20)},
        {"backgrounds": {"marble": 1.0}},
    ],
)
def test_bad_realism_settings_are_refused(bad):
    with pytest.raises(ValueError):
        RenderConfig(**bad)


def test_casing_weights_reach_the_word_sampler():
    mixed = Charset(preset="mixed62")
    data = SyntheticWordDataset(
        mixed, length=20, vocab_size=500, word_weights={"words": 1.0}, casing={"upper": 1.0}
    )
    labels = [data.sample(i)[1] for i in range(20)]
    assert all(label == label.upper() for label in labels)
    assert any(label.isalpha() for label in labels)


def test_synth_real_preset_composes_and_renders():
    cfg = compose_config("train", ["data=synth_real", "data.synth.vocab_size=500"])
    render_cfg = RenderConfig.from_any(cfg.data.synth.render)
    for name in NEW_PROBABILITIES:
        assert 0 < getattr(render_cfg, name) <= 1, name
    assert cfg.data.synth.casing["upper"] > 0
    assert set(cfg.data.synth.render) <= {f.name for f in dataclasses.fields(RenderConfig)}
    data = instantiate(cfg.data.synth, charset=instantiate(cfg.charset), length=8)
    first = [pixels(data[i][0]) for i in range(8)]
    again = instantiate(cfg.data.synth, charset=instantiate(cfg.charset), length=8)
    assert first == [pixels(again[i][0]) for i in range(8)]
    # The preset also composes with an experiment, as training uses it.
    quick = compose_config("train", ["experiment=crnn_ace_quick", "data=synth_real"])
    assert quick.data.synth.render.jpeg_prob > 0


def test_caps_only_fonts_are_rejected_only_for_case_sensitive_charsets():
    mixed = required_symbols(Charset(preset="mixed62"))
    assert font_problem(FONT, mixed, distinct_case=True) is None
    caps = sorted(Path("/usr/share/fonts").rglob("BebasNeue-Regular.otf"))
    if not caps:
        pytest.skip("Bebas Neue (fonts-bebas-neue, an all-caps font) is not installed")
    assert "capitals" in font_problem(caps[0], mixed, distinct_case=True)
    assert font_problem(caps[0], required_symbols(Charset(preset="lower36"))) is None


@pytest.fixture
def real_folder(tmp_path: Path) -> Path:
    """A tiny labelled folder standing in for IIIT5K_train."""
    folder = tmp_path / "real"
    (folder / "images").mkdir(parents=True)
    lines = []
    for i, word in enumerate(["Shop", "EXIT", "cafe", "42"]):
        Image.new("RGB", (60 + 10 * i, 24), (200, 40 * i, 90)).save(folder / "images" / f"{i}.png")
        lines.append(f"{i}.png\t{word}")
    (folder / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_real_vs_synth_grid_writes_one_png(real_folder, tmp_path, capsys):
    out = tmp_path / "grid.png"
    script = load_script("real_vs_synth_grid")
    script.main(
        ["--out", str(out), "--num", "4", "--real", str(real_folder), "data.synth.vocab_size=500"]
    )
    assert "4 synthetic and 4 real" in capsys.readouterr().out
    assert Image.open(out).size[0] > Image.open(out).size[1]
    script.main(
        [
            "--out",
            str(out),
            "--num",
            "2",
            "--real",
            str(real_folder),
            "--model-input",
            "data.synth.vocab_size=500",
        ]
    )
    assert out.is_file()


def test_real_vs_synth_grid_refuses_benchmark_folders(tmp_path):
    bench = tmp_path / "benchmarks" / "IIIT5K"
    bench.mkdir(parents=True)
    with pytest.raises(SystemExit):
        load_script("real_vs_synth_grid").main(["--real", str(bench)])


def test_bench_renderer_takes_a_data_config(capsys):
    load_script("bench_renderer").main(
        ["--num", "3", "--warmup", "1", "--data", "synth_real", "data.synth.vocab_size=500"]
    )
    assert "data=synth_real" in capsys.readouterr().out
