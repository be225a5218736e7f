"""Draw one word as a cropped scene-text-like image with PIL and numpy.

Geometry (rotation, perspective) is applied to the text mask alone and the background is made
afterwards at the final size, so no fill-colour corners appear; blur, noise and low resolution
are applied last, to the composed image, as a camera would. Every random number comes from one
``random.Random`` in a fixed order, so equal seeds give equal pixels; the steps live in
``config``, ``glyphs``, ``geometry``, ``colours``, ``backgrounds`` and ``effects``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ace_str.data.synth.backgrounds import background
from ace_str.data.synth.colours import outline_colour, pick_colours
from ace_str.data.synth.config import RenderConfig
from ace_str.data.synth.effects import drop_shadow, motion_blur, recompress_jpeg, shade, text_fill
from ace_str.data.synth.geometry import curve, perspective
from ace_str.data.synth.glyphs import Layouts, draw_glyphs, glyph_box, load_font, neighbours


def render_word(
    text: str,
    font_path: str | Path,
    rng: random.Random,
    cfg: RenderConfig,
    symbols: str | None = None,
) -> Image.Image:
    """An RGB crop of ``text``; all randomness comes from ``rng``, so equal seeds give equal
    pixels. ``symbols`` feeds the neighbouring-text fragments (default: the text's own
    characters); give only symbols the font is known to draw."""
    size = rng.randint(*cfg.font_size)
    loaded = load_font(str(font_path), size)
    stroke = 0
    if cfg.outline_prob > 0 and rng.random() < cfg.outline_prob:
        stroke = max(1, round(rng.uniform(*cfg.outline_width) * size))
    layouts = Layouts(loaded.font)
    glyphs = layouts[text, 0]
    stroked = layouts[text, stroke]
    left, top, right, bottom = glyph_box(stroked)
    # At least cap height to baseline, so "ace" keeps its x-height look instead of filling
    # the crop like "ACE" would.
    top, bottom = min(top, loaded.cap_top - stroke), max(bottom, loaded.baseline + stroke)
    pads = [round(rng.uniform(*cfg.padding) * size) for _ in range(4)]
    if cfg.tight_crop_prob > 0 and rng.random() < cfg.tight_crop_prob:
        pads = [-round(rng.uniform(*cfg.tight_crop) * size) for _ in range(4)]
    extras: list[tuple[int, int, str]] = []
    if cfg.neighbour_prob > 0 and rng.random() < cfg.neighbour_prob:
        pool = "".join(ch for ch in (symbols or text) if not ch.isspace()) or text
        box = (left, top, right, bottom)
        extras = neighbours(rng, cfg, loaded, size, stroke, box, pads, pool, layouts)
    pad_l, pad_t, pad_r, pad_b = pads
    canvas = (max(1, right - left + pad_l + pad_r), max(1, bottom - top + pad_t + pad_b))
    x, y = pad_l - left, pad_t - top
    extras_at = [(x + dx, y + dy, extra) for dx, dy, extra in extras]
    mask = Image.new("L", canvas, 0)
    draw_glyphs(mask, [(x, y, glyphs), *((a, b, layouts[e, 0]) for a, b, e in extras_at)])
    if stroke:
        # Fill and outline masks travel through the geometry together as two bands.
        outline = Image.new("L", canvas, 0)
        pieces = ((a, b, layouts[e, stroke]) for a, b, e in extras_at)
        draw_glyphs(outline, [(x, y, stroked), *pieces])
        mask = Image.merge("RGB", (mask, outline, outline))
    if cfg.width_scale_prob > 0 and rng.random() < cfg.width_scale_prob:
        factor = math.exp(rng.uniform(*(math.log(f) for f in cfg.width_scale)))
        mask = mask.resize(
            (max(1, round(mask.width * factor)), mask.height), Image.Resampling.BILINEAR
        )

    if cfg.curve_prob > 0 and rng.random() < cfg.curve_prob:
        mask = curve(mask, rng, cfg)
    if rng.random() < cfg.rotation_prob:
        angle = rng.uniform(*cfg.rotation)
        mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    if rng.random() < cfg.perspective_prob:
        mask = perspective(mask, rng, cfg.perspective_strength)
    fill, outline_mask = (mask.getchannel(0), mask.getchannel(1)) if stroke else (mask, None)

    text_colour, base = pick_colours(rng, cfg.min_contrast, cfg.vivid_prob, cfg.plain_text_prob)
    image = background(rng, mask.size, text_colour, base, cfg)
    if cfg.shadow_prob > 0 and rng.random() < cfg.shadow_prob:
        drop_shadow(image, fill if outline_mask is None else outline_mask, base, size, rng, cfg)
    if outline_mask is not None:
        image.paste(outline_colour(rng, text_colour, cfg.min_contrast), (0, 0), outline_mask)
    if cfg.text_texture_prob > 0 and rng.random() < cfg.text_texture_prob:
        image.paste(
            text_fill(rng, mask.size, text_colour, cfg.text_texture_variation), (0, 0), fill
        )
    else:
        image.paste(text_colour, (0, 0), fill)
    if cfg.shading_prob > 0 and rng.random() < cfg.shading_prob:
        image = shade(image, rng, cfg)

    if rng.random() < cfg.lowres_prob:
        scale = rng.uniform(*cfg.lowres_scale)
        small = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(small, Image.Resampling.BILINEAR).resize(
            image.size, Image.Resampling.BILINEAR
        )
    if rng.random() < cfg.blur_prob:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*cfg.blur_radius)))
    if cfg.motion_blur_prob > 0 and rng.random() < cfg.motion_blur_prob:
        image = motion_blur(image, rng, cfg.motion_blur_sizes)
    if rng.random() < cfg.noise_prob:
        np_rng = np.random.default_rng(rng.getrandbits(64))
        noise = np_rng.normal(0.0, rng.uniform(*cfg.noise_sigma), (image.height, image.width, 1))
        pixels = np.asarray(image, dtype=np.float32)
        pixels += noise.astype(np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8), "RGB")
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        image = recompress_jpeg(image, rng.randint(*cfg.jpeg_quality))
    if cfg.height is not None and image.height != cfg.height:
        width = max(1, round(image.width * cfg.height / image.height))
        image = image.resize((width, cfg.height), Image.Resampling.BILINEAR)
    return image
