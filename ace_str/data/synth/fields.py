"""Float32 ramps, grids and smooth noise fields shared by backgrounds and effects; each is
written to give the very values of the plainer numpy expression it replaces, only cheaper."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image


@functools.lru_cache(maxsize=4096)
def unit_ramp(n: int) -> np.ndarray:
    """``np.linspace(0, 1, n)`` in float32, read-only and cached: numpy's linspace costs more
    than the arithmetic on the ramp it makes."""
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    ramp.flags.writeable = False
    return ramp


def to_image(pixels: np.ndarray) -> Image.Image:
    """Clip in place (callers hand over a fresh array) and cast, as ``np.clip`` then astype."""
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8), "RGB")


def grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates as float32 (h, 1) and (1, w): they broadcast to the values
    of ``np.mgrid[0:h, 0:w].astype(np.float32)`` element by element, without two full grids."""
    return (
        np.arange(h, dtype=np.float32)[:, None],
        np.arange(w, dtype=np.float32)[None, :],
    )


def smooth_field(np_rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int]):
    """A (h, w) float32 field of unit-variance values on a coarse ``cells`` grid, upscaled."""
    coarse = np_rng.standard_normal(cells).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize(size, Image.Resampling.BICUBIC))
