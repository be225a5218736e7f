"""Photometric effects on the composed image: textured text, shadows, light, blur, JPEG."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

from ace_str.data.synth.colours import jitter
from ace_str.data.synth.config import RenderConfig
from ace_str.data.synth.fields import grid, smooth_field, to_image, unit_ramp


def text_fill(
    rng: random.Random, size: tuple[int, int], text: tuple[int, int, int], variation: int
) -> Image.Image:
    """The text's colour as a gradient towards a nearby colour, or as smooth blotches."""
    w, h = size
    far = np.array(jitter(rng, text, variation), dtype=np.float32)
    if rng.random() < 0.5:
        horizontal = rng.random() < 0.5
        axis = unit_ramp(w if horizontal else h)
        share = np.broadcast_to(axis[None, :] if horizontal else axis[:, None], (h, w))
    else:
        np_rng = np.random.default_rng(rng.getrandbits(64))
        share = np.clip(0.5 + 0.5 * smooth_field(np_rng, size, (2, 6)), 0, 1)
    pixels = (1 - share[..., None]) * np.array(text, dtype=np.float32) + share[..., None] * far
    return to_image(pixels)


def drop_shadow(
    image: Image.Image,
    glyphs: Image.Image,
    base: tuple[int, int, int],
    size: int,
    rng: random.Random,
    cfg: RenderConfig,
) -> None:
    """Paste a shifted, blurred copy of ``glyphs`` in a darkened background colour."""
    dx = round(rng.uniform(*cfg.shadow_offset) * size) * rng.choice((-1, 1))
    dy = round(rng.uniform(*cfg.shadow_offset) * size)
    shadow = Image.new("L", glyphs.size, 0)
    shadow.paste(glyphs, (dx, dy))
    radius = rng.uniform(*cfg.shadow_blur) * size
    if radius >= 0.3:
        shadow = shadow.filter(ImageFilter.GaussianBlur(radius))
    opacity = rng.uniform(*cfg.shadow_opacity)
    # numpy rounds half to even like round(), on the same float64 products.
    shadow = shadow.point(np.round(np.arange(256) * opacity).astype(np.int64).tolist())
    darkness = rng.uniform(0.0, 0.5)
    image.paste(tuple(round(c * darkness) for c in base), (0, 0), shadow)


def shade(image: Image.Image, rng: random.Random, cfg: RenderConfig) -> Image.Image:
    """Uneven light: a linear or radial falloff that darkens, or as glare washes out."""
    w, h = image.size
    strength = rng.uniform(*cfg.shading_strength)
    ys, xs = grid(w, h)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        falloff = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    else:
        cx, cy, radius = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.5, 1.5) * max(w, h)
        falloff = np.clip(np.hypot(xs - cx, ys - cy) / radius, 0, 1)
    keep = (1 - strength * falloff)[..., None]
    pixels = np.asarray(image, dtype=np.float32)  # a fresh array: the steps below work in place
    if rng.random() < 0.3:  # glare: pushed towards white instead of black, 255 - (255 - p) * k
        np.subtract(255, pixels, out=pixels)
        pixels *= keep
        np.subtract(255, pixels, out=pixels)
    else:
        pixels *= keep
    return to_image(pixels)


def motion_blur(image: Image.Image, rng: random.Random, sizes: Sequence[int]) -> Image.Image:
    """Average along a line through the kernel's centre at a random angle."""
    k = rng.choice(tuple(sizes))
    angle = rng.uniform(0, math.pi)
    c, dx, dy = (k - 1) / 2, math.cos(angle), math.sin(angle)
    weights = [max(0.0, 1 - abs((x - c) * dy - (y - c) * dx)) for y in range(k) for x in range(k)]
    return image.filter(ImageFilter.Kernel((k, k), weights, scale=sum(weights)))


def recompress_jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer, formats=("JPEG",)) as decoded:
        return decoded.convert("RGB")
