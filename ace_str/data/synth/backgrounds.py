"""Backgrounds made at the final size, after the geometry, so no fill-colour corners appear."""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageChops

from ace_str.data.synth.colours import contrast_ratio, contrasting_colour, jitter
from ace_str.data.synth.config import BACKGROUNDS, RenderConfig
from ace_str.data.synth.fields import grid, smooth_field, to_image, unit_ramp


def background(
    rng: random.Random,
    size: tuple[int, int],
    text: tuple[int, int, int],
    base: tuple[int, int, int],
    cfg: RenderConfig,
) -> Image.Image:
    kinds = [k for k in BACKGROUNDS if cfg.backgrounds.get(k, 0) > 0]
    (kind,) = rng.choices(kinds, [cfg.backgrounds[k] for k in kinds])
    if kind == "gradient":
        far = jitter(rng, base, cfg.background_variation)
        if contrast_ratio(text, far) >= cfg.min_contrast:
            w, h = size
            horizontal = rng.random() < 0.7
            axis = unit_ramp(w if horizontal else h)
            ramp = (1 - axis)[:, None] * np.array(base) + axis[:, None] * np.array(far)
            # One row (or column) is cast, then repeated: the same bytes as casting it all.
            ramp = ramp.astype(np.uint8)
            ramp = ramp[None, :, :] if horizontal else ramp[:, None, :]
            pixels = np.ascontiguousarray(np.broadcast_to(ramp, (h, w, 3)))
            return Image.fromarray(pixels, "RGB")
    elif kind == "noise":
        # Smooth blotches: upscale a coarse random grid, like stains or uneven lighting.
        w, h = size
        np_rng = np.random.default_rng(rng.getrandbits(64))
        coarse = np_rng.integers(
            -cfg.background_variation, cfg.background_variation + 1, (3, 8, 3), dtype=np.int16
        )
        offsets = Image.fromarray((coarse + 128).astype(np.uint8), "RGB").resize(
            size, Image.Resampling.BILINEAR
        )
        # Pillow's integer add gives offset - 128 + base clipped to 0..255, the pixels of the
        # int16 numpy sum, without four full-size arrays.
        return ImageChops.add(offsets, Image.new("RGB", size, base), 1.0, -128)
    elif kind == "texture":
        return _texture(rng, size, base, cfg.background_variation)
    elif kind == "stripes":
        far = jitter(rng, base, cfg.background_variation)
        if contrast_ratio(text, far) >= cfg.min_contrast:
            return _stripes(rng, size, base, far)
    elif kind == "blocks":
        second = contrasting_colour(rng, text, cfg.min_contrast)
        if second is not None:
            return _blocks(rng, size, base, second)
    return Image.new("RGB", size, base)


def _texture(
    rng: random.Random, size: tuple[int, int], base: tuple[int, int, int], variation: int
) -> Image.Image:
    """Photo-like surface: blotches at three scales, a faint tint and pixel grain."""
    np_rng = np.random.default_rng(rng.getrandbits(64))
    w, h = size
    light = sum(
        amplitude * smooth_field(np_rng, size, cells)
        for amplitude, cells in ((0.5, (2, 4)), (0.3, (5, 12)), (0.2, (10, 30)))
    )
    light = light + 0.15 * np_rng.standard_normal((h, w), dtype=np.float32)
    tint = smooth_field(np_rng, size, (2, 4))[..., None] * np_rng.normal(0, 0.1, 3)
    # base + variation * (light + tint), in place on the float64 tint: the same sums.
    tint += light[..., None]
    tint *= variation
    tint += np.array(base, dtype=np.float32)
    return to_image(tint)


def _stripes(
    rng: random.Random,
    size: tuple[int, int],
    base: tuple[int, int, int],
    far: tuple[int, ...],
) -> Image.Image:
    """Parallel bands between ``base`` and ``far``: soft (sine) or hard lines of some duty."""
    w, h = size
    if rng.random() < 0.6:
        angle = rng.choice((0.0, math.pi / 2)) + rng.uniform(-0.1, 0.1)
    else:
        angle = rng.uniform(0, math.pi)
    period = rng.uniform(0.15, 1.0) * h
    phase, hard, duty = rng.random(), rng.random() < 0.5, rng.uniform(0.08, 0.5)
    ys, xs = grid(w, h)
    t = ((xs * math.cos(angle) + ys * math.sin(angle)) / period + phase) % 1.0
    share = (t < duty).astype(np.float32) if hard else 0.5 + 0.5 * np.sin(2 * np.pi * t)
    pixels = (1 - share[..., None]) * np.array(base) + share[..., None] * np.array(far)
    return to_image(pixels)


def _blocks(
    rng: random.Random,
    size: tuple[int, int],
    base: tuple[int, int, int],
    second: tuple[int, int, int],
) -> Image.Image:
    """Two colours split by a straight, anti-aliased edge, mostly near-vertical or horizontal."""
    w, h = size
    angle = rng.choice((0.0, math.pi / 2, math.pi, 1.5 * math.pi)) + rng.uniform(-0.3, 0.3)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    ys, xs = grid(w, h)
    share = np.clip((xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle) + 0.5, 0, 1)
    pixels = (1 - share[..., None]) * np.array(base) + share[..., None] * np.array(second)
    return to_image(pixels)
