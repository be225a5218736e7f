"""Placing a text image on the fixed canvas of a 2D model (Sec. 4.1.2: 96x100).

``keep_ratio=False`` stretches every image over the whole canvas, the plain normalisation.
Otherwise two modes. Without a counter the image is fitted into the canvas keeping its aspect
ratio, so a short word fills it with huge characters; the paper reports that this "overloads"
training.
With a character counter the scale instead gives each character about ``char_size`` pixels of
side, ``sqrt(area / count)`` in the original, capped so the image still fits. Either way the
image is centred on a blank canvas of 0, the normalised mid-grey (as ResizeNormalize pads).

``max_text_height`` (with ``keep_ratio``) caps the image's height on the canvas without a
counter: a short word fitted to a 96-pixel-high canvas has letters three times the height the
map's cells see, and real short words read least of all there (REPRODUCING.md, Table 2).

``margin`` widens the image on the left and right by that fraction of its height, repeating its
edge columns, before it is placed: real word boxes are cut tight to the first and last letters,
where synthetic renders keep some background, and the 2D map reads fewer of the letters that
touch the canvas's edges (REPRODUCING.md, Table 2, "Tight boxes").

``min_aspect`` stretches an image narrower than that width over height to it, before the margin:
a tight real crop of a short word ("SALE" in a square box) has letters condensed past what the
renderer draws, where the 1D's 32x100 crops stretch every word (REPRODUCING.md, Table 2,
"Narrow boxes").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ace_str.data.transforms import ResizeNormalize, to_8bit


def canvas_scale(
    width: int,
    height: int,
    canvas: tuple[int, int],
    count: int | None,
    char_size: float,
    max_text_height: int | None = None,
) -> float:
    """Resize factor for a ``width`` x ``height`` image on a (height, width) ``canvas``.

    ``count`` None: the largest factor that fits, and that leaves the image at most
    ``max_text_height`` pixels high. Otherwise the factor giving each of ``count`` characters an
    area of ``char_size**2``, never larger than the fitting one.
    """
    fit = min(canvas[1] / width, canvas[0] / height)
    if max_text_height is not None:
        fit = min(fit, max_text_height / height)
    if count is None:
        return fit
    per_char = math.sqrt(width * height / max(1, count))
    return min(fit, char_size / per_char)


class CanvasNormalize(ResizeNormalize):
    """PIL image -> (C, height, width) tensor in [-1, 1], the text centred on a blank canvas.

    ``counter``: image -> character count; the construction layer makes it from
    ``data.transform.counter_checkpoint`` (a ``char_counter_quick`` checkpoint) as a callable
    that loads lazily in each worker. None selects the fitting fallback.
    """

    def __init__(
        self,
        height: int = 96,
        width: int = 100,
        channels: int = 3,
        keep_ratio: bool = True,
        counter: Callable[[Image.Image], int] | None = None,
        char_size: float = 24.0,
        interpolation: str = "bilinear",
        max_stretch: float = 1.0,
        max_text_height: int | None = None,
        margin: float = 0.0,
        min_aspect: float = 0.0,
    ) -> None:
        if max_stretch != 1.0:  # the canvas sizes text by its character count, not by a factor
            raise ValueError(f"CanvasNormalize takes no max_stretch (got {max_stretch})")
        super().__init__(height, width, channels, keep_ratio, interpolation)
        if char_size <= 0:
            raise ValueError(f"char_size must be positive, got {char_size}")
        if max_text_height is not None and max_text_height <= 0:
            raise ValueError(f"max_text_height must be positive or None, got {max_text_height}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if min_aspect < 0:
            raise ValueError(f"min_aspect must be >= 0 (0: no stretch), got {min_aspect}")
        self.counter = counter
        self.char_size = char_size
        self.max_text_height = max_text_height
        self.margin = margin
        self.min_aspect = min_aspect

    def __repr__(self) -> str:
        return (
            f"CanvasNormalize(height={self.height}, width={self.width}, channels={self.channels}, "
            f"keep_ratio={self.keep_ratio}, counter={self.counter!r}, "
            f"char_size={self.char_size}, max_text_height={self.max_text_height}, "
            f"margin={self.margin}, min_aspect={self.min_aspect})"
        )

    def count(self, image: Image.Image) -> int | None:
        """The counter's character count, or None without a counter."""
        if self.counter is None or not self.keep_ratio:
            return None
        return self.counter(image)

    def content_box(self, width: int, height: int, count: int | None) -> tuple[int, int, int, int]:
        """(left, top, width, height) of the resized image on the canvas."""
        if not self.keep_ratio:
            return 0, 0, self.width, self.height
        scale = canvas_scale(
            width, height, (self.height, self.width), count, self.char_size, self.max_text_height
        )
        w = min(self.width, max(1, round(width * scale)))
        h = min(self.height, max(1, round(height * scale)))
        return (self.width - w) // 2, (self.height - h) // 2, w, h

    def widen(self, image: Image.Image) -> Image.Image:
        """``image`` with ``margin`` times its height of its own edge columns on either side."""
        side = round(self.margin * image.height)
        if side <= 0:
            return image
        pixels = np.asarray(image)
        spread = ((0, 0), (side, side)) + ((0, 0),) * (pixels.ndim - 2)
        return Image.fromarray(np.pad(pixels, spread, mode="edge"), image.mode)

    def stretch(self, image: Image.Image) -> Image.Image:
        """``image`` widened to ``min_aspect`` times its height where it is narrower."""
        width = round(self.min_aspect * image.height)
        if width <= image.width:
            return image
        return image.resize((width, image.height), Image.Resampling.BILINEAR)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = to_8bit(image, self.channels)
        count = self.count(image)  # the text's characters, before any margin is added
        image = self.widen(self.stretch(image))
        left, top, w, h = self.content_box(*image.size, count)
        canvas = torch.zeros(self.channels, self.height, self.width)
        canvas[:, top : top + h, left : left + w] = self.resize_to_tensor(image, h, w)
        return canvas
