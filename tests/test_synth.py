"""The synthetic renderer: deterministic samples, faithful fonts, valid labels, LMDB export."""

from __future__ import annotations

import importlib.util
import pickle
import random
from pathlib import Path

import lmdb
import matplotlib
import pytest
from omegaconf import OmegaConf

from ace_str.data.charset import Charset
from ace_str.data.synth import (
    FontError,
    RenderConfig,
    SyntheticWordDataset,
    WordSampler,
    find_fonts,
    render_word,
)
from ace_str.data.synth.fonts import font_problem, required_symbols

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@pytest.fixture(scope="module")
def lower36() -> Charset:
    return Charset(preset="lower36")


@pytest.fixture(scope="module")
def dataset(lower36: Charset) -> SyntheticWordDataset:
    return SyntheticWordDataset(lower36, length=50, seed=3)


def pixels(image) -> tuple:
    return image.size, image.tobytes()


def test_same_seed_and_index_give_same_pixels(lower36, dataset):
    again = SyntheticWordDataset(lower36, length=50, seed=3)
    for index in (7, 0, 7):  # access order must not matter
        assert pixels(dataset[index][0]) == pixels(again[index][0])
        assert dataset[index][1] == again[index][1]


def test_different_index_or_seed_differs(lower36, dataset):
    other_seed = SyntheticWordDataset(lower36, length=50, seed=4)
    assert pixels(dataset[1][0]) != pixels(dataset[2][0])
    assert pixels(dataset[1][0]) != pixels(other_seed[1][0])


def test_global_rng_state_is_not_used(dataset):
    random.seed(1)
    first = pixels(dataset[5][0])
    random.seed(2)
    assert pixels(dataset[5][0]) == first


def test_pickles_and_works_after_unpickling(dataset):
    restored = pickle.loads(pickle.dumps(dataset))
    assert len(restored) == 50
    assert pixels(restored[9][0]) == pixels(dataset[9][0])
    assert restored[9][1] == dataset[9][1]


def test_images_are_rgb_and_labels_normalised(lower36, dataset):
    for index in range(len(dataset)):
        image, label = dataset[index]
        assert image.mode == "RGB" and min(image.size) > 4
        assert label and label == label.lower()
        assert all(ch in lower36 for ch in label)


def test_case_sensitive_charset_keeps_rendered_case():
    mixed = Charset(preset="mixed62")
    sampler = WordSampler(mixed, casing={"upper": 1.0})
    rng = random.Random(0)
    texts = [sampler.sample(rng) for _ in range(200)]
    assert all(mixed.normalize(t) == t for t in texts)
    assert any(t.isupper() for t in texts)


def test_word_sampler_respects_charset_and_length(lower36):
    sampler = WordSampler(lower36, max_length=6)
    rng = random.Random(0)
    for _ in range(300):
        text = sampler.sample(rng)
        assert 0 < len(text) <= 6
        assert all(ch.lower() in lower36 for ch in text)


def test_numbers_use_format_symbols_only_when_charset_has_them():
    rng = random.Random(0)
    plain = WordSampler(Charset(preset="lower36"), weights={"numbers": 1.0})
    assert all(plain.sample(rng).isdigit() for _ in range(100))
    rich = WordSampler(Charset(preset="printable94"), weights={"numbers": 1.0})
    assert any(not rich.sample(rng).isdigit() for _ in range(100))


def test_impossible_min_fonts_names_every_folder(lower36):
    with pytest.raises(FontError) as err:
        find_fonts(["/nonexistent/font/dir"], lower36, min_fonts=10**6)
    message = str(err.value)
    assert str(BUNDLED) in message and "/usr/share/fonts" in message
    assert "/nonexistent/font/dir: missing" in message
    assert "found" in message and "rejected" in message


@pytest.mark.parametrize("name", ["cmsy10.ttf", "cmex10.ttf", "LastResortHE-Regular.ttf"])
def test_symbol_fonts_are_rejected(lower36, name):
    path = BUNDLED / name
    assert font_problem(path, required_symbols(lower36)) is not None
    assert path not in find_fonts(charset=lower36)


def test_text_fonts_are_kept(lower36):
    names = {p.name for p in find_fonts(charset=lower36)}
    assert "DejaVuSans.ttf" in names
    # cmr10 draws letters and digits fine but maps "<" to "¡": fine for lower36 only.
    assert "cmr10.ttf" in names
    printable = Charset(preset="printable94")
    assert "cmr10.ttf" not in {p.name for p in find_fonts(charset=printable)}


def test_font_families_narrow_the_fonts_by_family_pattern(lower36):
    every = find_fonts(charset=lower36)
    sans = find_fonts(charset=lower36, families=["dejavu sans"])  # case-insensitive
    assert sans and set(sans) < set(every)
    assert {p.name for p in sans} >= {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf"}
    assert all(p.name.startswith("DejaVuSans") for p in sans)
    both = find_fonts(charset=lower36, families=["DejaVu Sans", "DejaVu Serif"])
    assert set(sans) < set(both) and any(p.name.startswith("DejaVuSerif") for p in both)
    data = SyntheticWordDataset(lower36, length=2, font_families=["DejaVu Sans"])
    assert data.fonts == sans
    with pytest.raises(FontError, match="No Such Family"):
        find_fonts(charset=lower36, families=["No Such Family*"])


def test_too_few_fonts_for_the_setting_warn_with_the_command_that_adds_them(lower36, caplog):
    sans = find_fonts(charset=lower36, families=["DejaVu Sans"])
    with caplog.at_level("WARNING", logger="ace_str.data.synth.dataset"):
        SyntheticWordDataset(lower36, length=2, font_families=["DejaVu Sans"], recommended_fonts=2)
    assert not caplog.records  # enough
    with caplog.at_level("WARNING", logger="ace_str.data.synth.dataset"):
        SyntheticWordDataset(
            lower36, length=2, font_families=["DejaVu Sans"], recommended_fonts=len(sans) + 1
        )
    (record,) = caplog.records
    assert f"only {len(sans)} usable fonts" in record.message
    assert "bash scripts/install_fonts.sh" in record.message


def test_word_frequency_power_draws_scene_text_lengths(lower36):
    """Words by frequency^0.75 are shorter on average than words drawn alike (mean ~7), as
    scene text is (IIIT5K: mean 4.5); 0 keeps the old stream exactly."""
    import random
    import statistics

    words = {"words": 1.0}
    alike = WordSampler(lower36, weights=words)
    by_freq = WordSampler(lower36, weights=words, frequency_power=0.75, casing={"lower": 1.0})
    rng_a, rng_b = random.Random(3), random.Random(3)
    mean_alike = statistics.mean(len(alike.sample(rng_a)) for _ in range(3000))
    drawn = [by_freq.sample(rng_b) for _ in range(3000)]
    assert mean_alike > 6.5 and statistics.mean(map(len, drawn)) < 6.0
    assert drawn.count("the") > 10  # the most frequent word, once in 50,000 when drawn alike
    default = WordSampler(lower36, weights=words, frequency_power=0.0)
    assert [default.sample(random.Random(5)) for _ in range(3)] == [
        alike.sample(random.Random(5)) for _ in range(3)
    ]
    with pytest.raises(ValueError, match="frequency_power"):
        WordSampler(lower36, frequency_power=-1)


def test_render_config_accepts_hydra_style_dicts(lower36):
    render = OmegaConf.create({"font_size": [30, 30], "height": 32, "blur_prob": 0.0})
    data = SyntheticWordDataset(lower36, length=4, render=render)
    assert data.render_config.font_size == (30, 30)
    assert all(data[i][0].height == 32 for i in range(4))


def test_render_word_handles_every_background():
    font = find_fonts()[0]
    for kind in ("flat", "gradient", "noise"):
        cfg = RenderConfig(backgrounds={kind: 1.0}, rotation_prob=1.0, perspective_prob=1.0)
        image = render_word("Hello42", font, random.Random(0), cfg)
        assert image.mode == "RGB" and image.width > image.height


def test_transform_is_applied(lower36):
    data = SyntheticWordDataset(lower36, length=2, transform=lambda im: im.size)
    size, label = data[0]
    assert isinstance(size, tuple) and isinstance(label, str)


def test_render_lmdb_writes_clovaai_layout(tmp_path):
    spec = importlib.util.spec_from_file_location("render_lmdb", ROOT / "scripts/render_lmdb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "synth.lmdb"
    module.main(["--out", str(out), "--num", "8", "--seed", "1", "--workers", "1"])

    env = lmdb.open(str(out), readonly=True, lock=False)
    with env.begin() as txn:
        assert int(txn.get(b"num-samples")) == 8
        assert txn.get(b"image-000000000") is None
        for key in range(1, 9):
            assert txn.get(b"image-%09d" % key).startswith(b"\x89PNG")
            label = txn.get(b"label-%09d" % key).decode("utf-8")
            assert label and all(ch in Charset(preset="lower36") for ch in label)
        assert txn.get(b"image-000000009") is None
    env.close()
