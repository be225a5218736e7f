"""PASCAL VOC as a counting dataset (paper Sec. 4.3, Table 4): object counts per class.

VOC's bounding boxes become counts (Sec. 4.3.1); each of the 20 classes gets one label symbol
(``VOC_SYMBOLS``, configs/charset/voc20.yaml) so an image's label is its multiset of objects.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_SYMBOLS = "abcdefghijklmnopqrst"  # class k's label symbol


def read_voc_objects(xml_path: str | Path, include_difficult: bool = False) -> list[str]:
    """Class names of the objects of one VOC annotation file; objects marked ``difficult``
    are left out unless asked for (VOC's own evaluation ignores them)."""
    path = Path(xml_path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise ValueError(f"{path}: unreadable VOC annotation ({err})") from err
    names = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise ValueError(f"{path}: unknown VOC class {name!r}")
        if include_difficult or (obj.findtext("difficult") or "0").strip() != "1":
            names.append(name)
    return names


def voc_label(names: list[str]) -> str:
    """The multiset label string of a list of class names."""
    return "".join(VOC_SYMBOLS[VOC_CLASSES.index(n)] for n in sorted(names, key=VOC_CLASSES.index))


class VOCCountDataset(Dataset):
    """``(image, label)`` for one split of a VOCdevkit year folder (``root`` holds
    Annotations/, JPEGImages/, ImageSets/Main/<split>.txt)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        transform: Callable[[Image.Image], Any] | None = None,
        include_difficult: bool = False,
    ) -> None:
        self.root = Path(root)
        listing = self.root / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"VOC split list not found: {listing}")
        self.ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        self.transform = transform
        self.labels = [
            voc_label(read_voc_objects(self.root / "Annotations" / f"{i}.xml", include_difficult))
            for i in self.ids
        ]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        path = self.root / "JPEGImages" / f"{self.ids[index]}.jpg"
        try:
            image = Image.open(path).convert("RGB")
        except OSError as err:
            raise ValueError(f"{path}: unreadable image ({err})") from err
        return (self.transform(image) if self.transform is not None else image), self.labels[index]
