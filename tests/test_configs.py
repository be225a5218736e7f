"""Every experiment composes and builds; configs hold components as _target_ entries."""

import re
from pathlib import Path

import pytest
from hydra.utils import instantiate

from ace_str.build.config import compose_config
from ace_str.build.data import build_train_dataset, synth_dataset
from ace_str.build.models import build_charset, build_model
from tests.conftest import TINY

EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).parents[1] / "configs/experiment").glob("*.yaml")
)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment):
    cfg = compose_config("train", [f"experiment={experiment}"])
    assert cfg.name == experiment
    charset = build_charset(cfg)
    model = build_model(cfg, charset)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    instantiate(cfg.scheduler)(optimizer)
    assert model.num_classes == charset.num_classes


def test_crnn_ace_is_the_papers_setting():
    cfg = compose_config("train", ["experiment=crnn_ace"])
    assert cfg.head.mode == "cross_entropy"
    assert (cfg.data.height, cfg.data.width, cfg.data.channels) == (32, 100, 1)
    assert cfg.charset.preset == "lower36"
    assert cfg.optimizer._target_ == "torch.optim.Adadelta" and cfg.optimizer.lr == 1.0
    assert cfg.data.batch_size == 64 and cfg.data.train_roots == []


def test_missing_train_root_is_named(tmp_path):
    cfg = compose_config(
        "train", ["experiment=crnn_ace", *TINY, f"data.train_roots=[{tmp_path}/nope]"]
    )
    with pytest.raises(FileNotFoundError, match="nope"):
        build_train_dataset(cfg, build_charset(cfg))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_no_experiment_trains_or_validates_on_a_test_set(experiment):
    """The benchmark test sets are for evaluate.py only (real_train holds the *_train sets)."""
    from omegaconf import OmegaConf

    cfg = compose_config("train", [f"experiment={experiment}"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    roots = [*data.get("train_roots", []), *data.get("val_roots", [])]
    roots += [r for source in data.get("train_sources", []) for r in source.get("roots", [])]
    assert not [r for r in roots if "benchmarks" in str(r) or "_test" in str(r)]


def test_cpu_synth_real_fine_tunes_on_real_train_from_step_6000(tmp_path):
    from PIL import Image

    for name in ("IIIT5K_train", "SVT_train", "IC15_train"):
        (tmp_path / name / "images").mkdir(parents=True)
        Image.new("RGB", (50, 20), "white").save(tmp_path / name / "images/0.png")
        (tmp_path / name / "labels.tsv").write_text("0.png\tHotel\n", encoding="utf-8")
    cfg = compose_config(
        "train", ["experiment=cpu_synth_real", *TINY, f"data.real_train_root={tmp_path}"]
    )
    dataset, _ = build_train_dataset(cfg, build_charset(cfg))
    assert dataset.names == ["synth", "real"] and len(dataset.sources[1]) == 3
    # the real crops join for the last quarter of the run, however many steps the budget gives
    for steps in (8000, 3000):
        sampler = dataset.batch_sampler(cfg.data.batch_size, cfg.seed, 0, total_steps=steps)
        joins = steps * 3 // 4
        assert sampler.counts_at(joins - 1)[1] == 0 and sampler.counts_at(joins)[1] > 0


def test_docs_and_scripts_name_no_machine_paths():
    """Commands in the docs must run from any clone: paths relative to the repository (such as
    ../shared/data/...), never one machine's absolute folders (docs/RESULTS.md had /work/...)."""
    repo = Path(__file__).parents[1]
    files = [repo / "README.md", repo / "data/README.md", *sorted((repo / "docs").glob("*.md"))]
    files += sorted((repo / "scripts").glob("*.py")) + sorted(repo.glob("*.py"))
    machine = re.compile(r"(?<![\w.~])/(?:work|home|Users|root|mnt)/")
    found = [
        f"{path.relative_to(repo)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if machine.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("experiment", ["crnn_ace", "crnn_ace_quick", "cpu_synth_real"])
def test_blank_prior_is_the_recipes_blank_share(experiment):
    """head.blank_prior is Eq. 8's blank share of the recipe's own data, 1 - mean |S| / T: the
    frames the backbone gives a 32 x 100 crop and the renderer's mean word length."""
    import random

    import torch

    cfg = compose_config("train", [f"experiment={experiment}"])
    charset = build_charset(cfg)
    model = build_model(cfg, charset).eval()
    with torch.no_grad():
        frames = model.backbone(torch.zeros(1, cfg.data.channels, 32, 100)).shape[1]
    sampler = synth_dataset(cfg.data.synth, charset, None, length=1).sampler
    rng = random.Random(0)
    mean_length = sum(len(sampler.sample(rng)) for _ in range(4000)) / 4000
    assert abs(cfg.head.blank_prior - (1.0 - mean_length / frames)) < 0.02


@pytest.mark.parametrize("experiment", ["resnet2d_ace_quick", "resnet2d_ace_cpu"])
def test_2d_blank_prior_is_the_maps_blank_share(experiment):
    """In 2D, Eq. 10's blank share is 1 - mean |S| / (H x W): the cells of the map a 96 x 100
    canvas gives and the renderer's mean word length (resnet2d_ace sets it for all three); the
    warm start's the same on its 32x100 crops' map."""
    import random

    import torch

    from ace_str.engine.pretrain import pretrain_config

    cfg = compose_config("train", [f"experiment={experiment}"])
    model = build_model(cfg, build_charset(cfg)).eval()
    with torch.no_grad():
        shape = (1, cfg.data.channels, cfg.data.height, cfg.data.width)
        cells = model.backbone(torch.zeros(shape)).shape[1:3]
    sampler = synth_dataset(cfg.data.synth, build_charset(cfg), None, length=1).sampler
    rng = random.Random(0)
    mean_length = sum(len(sampler.sample(rng)) for _ in range(4000)) / 4000
    assert abs(cfg.head.blank_prior - (1.0 - mean_length / (cells[0] * cells[1]))) < 0.005
    assert compose_config("train", ["experiment=resnet2d_ace"]).head.blank_prior == 0.96
    stage = pretrain_config(cfg)  # the warm start's 32x100 crops: a 4-row map of the same words
    crop = (stage.data.height, stage.data.width)
    stage_cells = model.backbone.map_size(*crop)
    assert stage_cells[0] == 4 and stage_cells[1] == cells[1]
    stage_share = 1.0 - mean_length / (stage_cells[0] * stage_cells[1])
    assert abs(stage.head.blank_prior - stage_share) < 0.01


@pytest.mark.parametrize(
    ("experiment", "minutes"), [("resnet2d_ace_quick", 20), ("resnet2d_ace_cpu", 60)]
)
def test_2d_recipes_end_within_their_minutes(experiment, minutes):
    """One command runs the warm start and the canvas; their guards together bound it by the
    recipe's minutes (20 for the quick one, an hour), and each budget fits inside its guard."""
    from ace_str.engine.pretrain import pretrain_config

    cfg = compose_config("train", [f"experiment={experiment}"])
    stage = pretrain_config(cfg)
    assert stage is not None
    assert stage.trainer.max_minutes + cfg.trainer.max_minutes <= minutes
    for run in (stage, cfg):
        assert 0 < run.trainer.budget_minutes <= run.trainer.max_minutes


@pytest.mark.parametrize("experiment", ["hctr_ace_quick", "count_ace_quick"])
def test_blank_prior_is_off_where_the_word_prior_does_not_apply(experiment):
    assert compose_config("train", [f"experiment={experiment}"]).head.blank_prior is None


def test_2d_hour_recipe_mixes_irregular_and_real_geometry():
    """The hour's canvas draws half its words with the canvas's irregular geometry (data.synth,
    which validation renders) and half with data=synth_real's milder geometry, the 1D recipes'
    words; the warm start's straight crops keep one source."""
    from omegaconf import OmegaConf

    from ace_str.data.mixing import MixedDataset
    from ace_str.data.synth.config import RenderConfig
    from ace_str.engine.pretrain import pretrain_config

    cfg = compose_config("train", ["experiment=resnet2d_ace_cpu"])
    flat = compose_config("train", ["experiment=resnet2d_ace_quick", "data=synth_real"])
    sources = {source.name: source for source in cfg.data.train_sources}
    assert set(sources) == {"irregular", "mild"}
    assert sources["irregular"].ratio == sources["mild"].ratio
    assert not sources["irregular"].get("synth")  # the validated distribution itself

    def render(node) -> RenderConfig:
        return RenderConfig(**OmegaConf.to_container(node.render))

    mild = render(OmegaConf.merge(cfg.data.synth, sources["mild"].synth))
    real, canvas = render(flat.data.synth), render(cfg.data.synth)
    geometry = ("rotation_prob", "rotation", "perspective_prob", "perspective_strength")
    geometry += ("curve_prob", "curve_amount", "curves", "wave_cycles")
    for key in geometry:
        assert getattr(mild, key) == getattr(real, key), key
    assert canvas.rotation != real.rotation and canvas.curve_prob > real.curve_prob  # irregular
    assert mild.jpeg_prob == canvas.jpeg_prob  # the realism effects of both halves alike
    assert mild.width_scale_prob == canvas.width_scale_prob > 0  # condensed words in both
    assert RenderConfig().width_scale_prob == real.width_scale_prob == 0  # not in the 1D preset
    assert len(pretrain_config(cfg).data.train_sources) == 0
    dataset, _ = build_train_dataset(cfg, build_charset(cfg))
    assert isinstance(dataset, MixedDataset) and list(dataset.names) == ["irregular", "mild"]


def test_2d_hour_recipe_reads_real_crops_capped_widened_and_stretched():
    """Synthetic words train and validate as rendered; real crops (evaluate.py, read.py) get the
    text-height cap, the side margin and the narrowest aspect chosen on real training crops."""
    from PIL import Image

    from ace_str.build.transform import build_transform, inference_transform

    cfg = compose_config("train", ["experiment=resnet2d_ace_cpu"])
    trained, real = build_transform(cfg), inference_transform(cfg)
    assert (trained.max_text_height, trained.margin, trained.min_aspect) == (None, 0.0, 0.0)
    assert (real.max_text_height, real.margin, real.min_aspect) == (40, 0.15, 1.5)
    square = Image.new("L", (40, 40), 255)  # a short word's tight box: stretched to 60x40,
    assert real.content_box(*real.widen(real.stretch(square)).size, None) == (14, 28, 72, 40)
    # and 6 edge columns (0.15 of 40 rows) on either side, under the 40 px cap already


def test_synth2d_real_is_the_realism_preset_on_the_2d_canvas():
    """data=synth2d_real layers the 2D canvas and its irregular geometry over data=synth_real,
    keeping the realism effects (which a second pass over data=synth would reset)."""
    flat = compose_config("train", ["experiment=resnet2d_ace_quick", "data=synth_real"]).data
    plain2d = compose_config("train", ["experiment=resnet2d_ace_quick", "data=synth2d"]).data
    real2d = compose_config("train", ["experiment=resnet2d_ace_cpu"]).data
    assert (real2d.height, real2d.width, real2d.channels) == (96, 100, 1)  # grey, as the 1D read
    assert plain2d.channels == 3
    assert {**real2d.transform, "channels": 3} == plain2d.transform
    for key in ("rotation", "curve_prob", "curve_amount", "perspective_strength"):
        assert real2d.synth.render[key] == plain2d.synth.render[key]
    for key in ("jpeg_prob", "neighbour_prob", "shadow_prob", "min_contrast", "backgrounds"):
        assert real2d.synth.render[key] == flat.synth.render[key]
    assert real2d.synth.casing == flat.synth.casing and real2d.synth.casing is not None
    assert plain2d.synth.casing is None
