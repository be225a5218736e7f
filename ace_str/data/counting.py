"""Synthetic object counting (paper Sec. 4.3): shapes of several classes scattered over an image.

The label is the multiset of the classes drawn, written as a string of class symbols (one
charset symbol a class), so the ordinary recognition pipeline (Charset, Collator, ACE on a 2D
map) trains a counter unchanged. Symbols are listed in reading order (column by column, the
order a 2D ACE map is decoded in), so an exact reading is also an exact count.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import Dataset

from ace_str.data.charset import Charset
from ace_str.data.synth.dataset import sample_rng

SHAPES = ("circle", "square", "triangle", "cross", "ring")


def label_counts(labels: Sequence[str], charset: Charset) -> Tensor:
    """(N, K) object counts per class (class k = charset symbol k) of multiset labels."""
    counts = torch.zeros(len(labels), len(charset), dtype=torch.long)
    for i, label in enumerate(labels):
        for index in charset.encode(label):
            counts[i, index - 1] += 1
    return counts


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, round(r / 3)))
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


class SyntheticCountDataset(Dataset):
    """``(image, label)``: 0..``max_objects`` shapes of random class, size, colour and place on
    a noisy background; class k is ``shapes[k]`` and its label symbol ``charset.symbols[k]``.
    Objects may overlap a little (centres at least one radius apart), as objects in photos do.
    Sample ``i`` depends on (seed, i) only."""

    def __init__(
        self,
        charset: Charset,
        length: int = 100_000,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
        shapes: Sequence[str] = SHAPES,
        size: int = 96,
        max_objects: int = 8,
        radius: tuple[float, float] = (5.0, 14.0),
    ) -> None:
        if len(shapes) != len(charset):
            raise ValueError(f"{len(shapes)} shapes need as many charset symbols, not {charset!r}")
        unknown = set(shapes) - set(SHAPES)
        if unknown:
            raise ValueError(f"unknown shapes {sorted(unknown)}; choose from {SHAPES}")
        if length < 1 or max_objects < 0 or not 0 < radius[0] <= radius[1]:
            raise ValueError("need length >= 1, max_objects >= 0 and 0 < radius[0] <= radius[1]")
        self.charset = charset
        self.length = length
        self.seed = seed
        self.transform = transform
        self.shapes = tuple(shapes)
        self.size = size
        self.max_objects = max_objects
        self.radius = (float(radius[0]), float(radius[1]))

    def __len__(self) -> int:
        return self.length

    def _place(self, rng: random.Random, placed: list[tuple[float, float, float]]):
        for _ in range(50):
            r = rng.uniform(*self.radius)
            cx, cy = rng.uniform(r, self.size - r), rng.uniform(r, self.size - r)
            if all(math.dist((cx, cy), (x, y)) >= max(r, q) for x, y, q in placed):
                return cx, cy, r
        return None  # crowded: fewer objects than drawn

    def sample(self, index: int) -> tuple[Image.Image, str]:
        """The PIL image and its label (class symbols in reading order), before any transform."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = sample_rng(self.seed, index)
        grey = rng.randint(90, 200)
        image = Image.effect_noise((self.size, self.size), rng.uniform(5, 30)).point(
            lambda v, g=grey: max(0, min(255, v - 128 + g))
        )
        image = Image.merge("RGB", [image] * 3)
        draw = ImageDraw.Draw(image)
        objects: list[tuple[float, float, float, int]] = []
        for _ in range(rng.randint(0, self.max_objects)):
            spot = self._place(rng, [o[:3] for o in objects])
            if spot is None:
                continue
            k = rng.randrange(len(self.shapes))
            fill = tuple(rng.choice((rng.randint(0, grey - 60), rng.randint(grey + 50, 255)))
                         for _ in range(3))  # fmt: skip
            _draw(draw, self.shapes[k], *spot, fill)
            objects.append((*spot, k))
        objects.sort(key=lambda o: (o[0], o[1]))  # column by column, top to bottom
        return image, "".join(self.charset.symbols[o[3]] for o in objects)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        image, label = self.sample(index)
        return (self.transform(image) if self.transform is not None else image), label
