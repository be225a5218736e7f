"""data.augment: real training crops are augmented per (seed, index), reproducibly, and
validation and evaluation data never are."""

import torch
from PIL import Image, ImageDraw

from ace_str.build.config import compose_config
from ace_str.build.data import build_train_dataset, build_val_datasets
from ace_str.build.models import build_charset
from ace_str.data.augment import AugmentedDataset
from ace_str.data.mixing import MixedDataset


def write_crops(path, words):
    """An ``images/`` + ``labels.tsv`` folder of drawn words (texture for the warps to move)."""
    (path / "images").mkdir(parents=True)
    for i, word in enumerate(words):
        image = Image.new("RGB", (60, 20), (230, 220, 200))
        ImageDraw.Draw(image).text((4, 4), word, fill=(20, 20, 80))
        image.save(path / "images" / f"{i}.png")
    lines = [f"{i}.png\t{word}" for i, word in enumerate(words)]
    (path / "labels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


WORDS = ["street", "hotel", "open", "cafe", "exit", "bank"]


def config(tmp_path, *overrides):
    root = tmp_path / "crops"
    if not root.exists():
        write_crops(root, WORDS)
    return compose_config(
        "train",
        [
            "experiment=crnn_ace",
            f"data.train_roots=[{root}]",
            f"data.val_roots=[{root}]",
            "data.val_synth_size=0",
            "data.num_workers=0",
            *overrides,
        ],
    )


def samples(dataset):
    return [dataset[i] for i in range(len(dataset))]


def test_augmentation_is_deterministic_per_sample_and_keeps_the_global_rng(tmp_path):
    """The same (seed, index) gives the same image whatever was drawn before, the global torch
    stream is left as found (a resumed run stays bit-exact), and the crops do change."""
    cfg = config(tmp_path, "augment=str")
    charset = build_charset(cfg)
    train, _ = build_train_dataset(cfg, charset)
    assert isinstance(train, AugmentedDataset)
    plain, _ = build_train_dataset(config(tmp_path), charset)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = samples(train)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(100)  # another global state: no effect on the samples
    backwards = [train[i] for i in reversed(range(len(train)))][::-1]
    for (a, label_a), (b, label_b) in zip(first, backwards, strict=True):
        assert torch.equal(a, b) and label_a == label_b
    changed = [not torch.equal(a, p) for (a, _), (p, _) in zip(first, samples(plain), strict=True)]
    assert sum(changed) >= 2, "the policy left nearly every crop as stored"
    reseeded, _ = build_train_dataset(config(tmp_path, "augment=str", "seed=1"), charset)
    pairs = zip(first, samples(reseeded), strict=True)
    assert any(not torch.equal(a, b) for (a, _), (b, _) in pairs)


def test_validation_and_evaluation_data_are_never_augmented(tmp_path):
    """The validation sets built with augment=str equal those built without it, sample for
    sample; evaluate.py's config has no augmentation to apply."""
    charset = build_charset(config(tmp_path))
    plain = build_val_datasets(config(tmp_path), charset)
    augmented = build_val_datasets(config(tmp_path, "augment=str"), charset)
    assert plain.keys() == augmented.keys() and plain
    for name, dataset in augmented.items():
        assert not isinstance(dataset, AugmentedDataset)
        for (a, la), (b, lb) in zip(samples(dataset), samples(plain[name]), strict=True):
            assert torch.equal(a, b) and la == lb
    evaluate = compose_config("evaluate", ["checkpoint=x.ckpt"])
    assert "augment" not in evaluate.get("data", {})


def test_mixing_augments_the_real_sources_only(tmp_path):
    cfg = config(
        tmp_path,
        "augment=str",
        "data.synth.vocab_size=500",
        f"data.train_sources=[{{name: synth, ratio: 1}}, {{roots: [{tmp_path / 'crops'}], "
        "ratio: 1}]",
    )
    mixed, _ = build_train_dataset(cfg, build_charset(cfg))
    assert isinstance(mixed, MixedDataset)
    kinds = [isinstance(source, AugmentedDataset) for source in mixed.sources]
    assert kinds == [False, True]
