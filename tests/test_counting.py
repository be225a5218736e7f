"""Counting (Sec. 4.3): synthetic shapes, VOC annotations, the mode baseline, counts of a model."""

import math

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from ace_str.build.config import compose_config
from ace_str.data.charset import Charset
from ace_str.data.collate import Collator
from ace_str.data.counting import SyntheticCountDataset, label_counts
from ace_str.data.transforms import ResizeNormalize
from ace_str.data.voc import VOC_CLASSES, VOC_SYMBOLS, VOCCountDataset, read_voc_objects, voc_label
from ace_str.models.backbones.resnet_fcn import ResNetFCN
from ace_str.models.counting import counts_from_map, most_frequent_counts, predict_counts
from ace_str.models.heads.ace import ACEHead
from ace_str.models.recognizer import Recognizer
from ace_str.scoring.metrics import CountTotals
from ace_str.viz.counts import count_map_figure

SHAPES = Charset(symbols="cstxr")


def test_synthetic_counts_are_reproducible_labels_of_the_drawn_shapes():
    data = SyntheticCountDataset(SHAPES, 40, seed=5, max_objects=6)
    labels = [data.sample(i)[1] for i in range(40)]
    assert labels == [SyntheticCountDataset(SHAPES, 40, seed=5, max_objects=6).sample(i)[1]
                      for i in range(40)]  # fmt: skip
    assert all(len(label) <= 6 and set(label) <= set("cstxr") for label in labels)
    assert len({len(label) for label in labels}) > 3  # counts vary
    image, label = data.sample(0)
    assert image.size == (96, 96) and image.mode == "RGB"
    empty = SyntheticCountDataset(SHAPES, 3, seed=5, max_objects=0)
    background = empty.sample(0)[0]
    assert empty.sample(0)[1] == ""
    # a drawn object changes pixels: images with objects differ from a same-seed empty scene
    assert len(label) == 0 or image.tobytes() != background.tobytes()
    with pytest.raises(ValueError, match="shapes"):
        SyntheticCountDataset(Charset(symbols="ab"), 3)


def test_label_counts_and_the_mode_baseline():
    counts = label_counts(["ccx", "", "rrs", "c"], SHAPES)
    assert counts.tolist() == [[2, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 2], [1, 0, 0, 0, 0]]
    # class c: counts 2, 0, 0, 1 -> 0; ring: 0, 0, 2, 0 -> 0; ties go to the smaller count
    assert most_frequent_counts(counts).tolist() == [0, 0, 0, 0, 0]
    assert most_frequent_counts(torch.tensor([[1, 3], [1, 2], [2, 2], [2, 3]])).tolist() == [1, 2]


VOC_XML = """<annotation><filename>{id}.jpg</filename>
<object><name>dog</name><difficult>0</difficult></object>
<object><name>person</name><difficult>0</difficult></object>
<object><name>dog</name><difficult>1</difficult></object>
<object><name>person</name></object>
</annotation>"""


def _voc(tmp_path, xml=VOC_XML):
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "ImageSets/Main/val.txt").write_text("000001\n")
    (tmp_path / "Annotations/000001.xml").write_text(xml.format(id="000001"))
    Image.new("RGB", (50, 40), "white").save(tmp_path / "JPEGImages/000001.jpg")
    return tmp_path


def test_voc_annotations_become_counts(tmp_path):
    root = _voc(tmp_path)
    xml = root / "Annotations/000001.xml"
    assert read_voc_objects(xml) == ["dog", "person", "person"]
    assert read_voc_objects(xml, include_difficult=True).count("dog") == 2
    data = VOCCountDataset(root, "val", transform=ResizeNormalize(32, 32, 3))
    image, label = data[0]
    assert image.shape == (3, 32, 32) and label == voc_label(["person", "dog", "person"])
    counts = label_counts([label], Charset(symbols=VOC_SYMBOLS))
    assert counts[0, 11].item() == 1 and counts[0, 14].item() == 2 and counts.sum() == 3


def test_voc_charset_config_gives_the_voc_symbols():
    """configs/charset/voc20.yaml, which voc.py names, is one symbol per class in class order."""
    charset = instantiate(compose_config("train", ["charset=voc20"]).charset)
    assert "".join(charset.symbols) == VOC_SYMBOLS and len(charset) == len(VOC_CLASSES)
    assert charset.normalize(voc_label(["tvmonitor", "aeroplane"])) == "at"


def test_bad_voc_annotation_is_named(tmp_path):
    root = _voc(tmp_path, VOC_XML.replace("dog", "dragon"))
    with pytest.raises(ValueError, match="000001.xml.*dragon"):
        VOCCountDataset(root, "val")
    with pytest.raises(FileNotFoundError, match="train.txt"):
        VOCCountDataset(root, "train")


def test_model_counts_score_against_truth():
    """Predicted counts are the summed, rounded probabilities of each class over the whole map,
    truth the label's counts, m-RMSE their per-class RMSE averaged: all recomputed here (counts
    read off one column, with the blank kept, or shifted by a class fail)."""
    torch.manual_seed(0)
    backbone = ResNetFCN(depth=18, in_channels=3, width=0.125, blocks=[1, 1, 1])
    model = Recognizer(backbone, ACEHead, SHAPES.num_classes)
    data = SyntheticCountDataset(SHAPES, 6, seed=1, size=48, transform=ResizeNormalize(48, 48, 3))
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=Collator(SHAPES, False))
    predicted, truth = predict_counts(model, loader, SHAPES)
    assert predicted.shape == truth.shape == (6, 5) and predicted.dtype == torch.long
    # truth: each shape's occurrences in the label, counted here
    labels = [data.sample(i)[1] for i in range(6)]
    assert truth.tolist() == [[label.count(s) for s in "cstxr"] for label in labels]
    # predicted: Eq. 4's y_k, the class's probability summed over every cell of the map, rounded
    with torch.inference_mode():
        maps = model.eval()(torch.stack([data[i][0] for i in range(6)])).softmax(-1)
    _, height, width, classes = maps.shape
    by_hand = [
        [round(sum(maps[i, h, w, k].item() for h in range(height) for w in range(width)))
         for k in range(1, classes)]  # class 0, the blank, is no object
        for i in range(6)
    ]  # fmt: skip
    assert predicted.tolist() == by_hand
    assert predicted.sum() > 0  # an untrained map still spreads some mass over the objects
    totals = CountTotals()
    totals.update(predicted, truth)
    summary = totals.summary()
    rmse = [
        math.sqrt(sum((by_hand[i][k] - truth[i, k].item()) ** 2 for i in range(6)) / 6)
        for k in range(5)
    ]
    assert summary["samples"] == 6
    assert summary["m_rmse"] == pytest.approx(sum(rmse) / 5)


def test_fig6_picture_has_a_panel_per_counted_class():
    torch.manual_seed(0)
    backbone = ResNetFCN(depth=18, in_channels=3, width=0.125, blocks=[1, 1, 1])
    model = Recognizer(backbone, ACEHead, SHAPES.num_classes)
    image = ResizeNormalize(48, 48, 3)(SyntheticCountDataset(SHAPES, 1, seed=2).sample(0)[0])
    names = ["circle", "square", "triangle", "cross", "ring"]
    counts = counts_from_map(model.eval()(image[None]))[0, 1:]
    fig = count_map_figure(model, image, names)
    assert len(fig.axes) == 1 + int((counts > 0).sum())
    assert len(count_map_figure(model, image, names, every_class=True).axes) == 6
    with pytest.raises(ValueError, match=r"\(1, h, w, 7\) map for 6 classes"):
        count_map_figure(model, image, names[:4] + ["a", "b"])
