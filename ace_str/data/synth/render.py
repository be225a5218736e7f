"""Draw one word as a cropped scene-text-like image with PIL and numpy.

Geometry (rotation, perspective) is applied to the text mask alone and the background is made
afterwards at the final size, so no fill-colour corners appear; blur, noise and low resolution
are applied last, to the composed image, as a camera would.

The realism effects (neighbouring text cut by the crop, tight crops, outlines, drop shadows,
textured text, uneven lighting, motion blur, JPEG artefacts and the textured backgrounds) are
off by default; ``configs/data/synth_real.yaml`` turns them on. While an effect's probability is
0 it draws no random number, so images rendered without it are byte-identical to those of a
renderer that never had it.
"""

from __future__ import annotations

import functools
import io
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

# New kinds go at the end: the choice among kinds with positive weight keeps its draws.
BACKGROUNDS = ("flat", "gradient", "noise", "texture", "stripes", "blocks")
CURVES = ("arc", "wave")
NEIGHBOUR_SIDES = ("left", "right", "above", "below")
_PROBABILITIES = (
    "rotation_prob",
    "perspective_prob",
    "curve_prob",
    "blur_prob",
    "noise_prob",
    "lowres_prob",
    "vivid_prob",
    "plain_text_prob",
    "neighbour_prob",
    "tight_crop_prob",
    "outline_prob",
    "shadow_prob",
    "text_texture_prob",
    "shading_prob",
    "motion_blur_prob",
    "jpeg_prob",
)


@dataclass
class RenderConfig:
    """Every randomisation knob of `render_word`; ranges are inclusive ``(low, high)``."""

    font_size: tuple[int, int] = (28, 48)
    # Padding on each side, as a fraction of the font size.
    padding: tuple[float, float] = (0.02, 0.3)
    # WCAG contrast ratio between text and background (1 = none, 21 = black on white).
    min_contrast: float = 3.0
    # Weights over BACKGROUNDS: flat, gradient (a linear ramp), noise (smooth blotches),
    # texture (photo-like: blotches at three scales plus grain), stripes (soft bands or hard
    # lines, like siding, shelves or ruled paper) and blocks (a second colour, both readable
    # under the text, split by an edge, like the border of a sign).
    backgrounds: dict[str, float] = field(
        default_factory=lambda: {"flat": 0.5, "gradient": 0.3, "noise": 0.2}
    )
    # Largest per-channel offset of the gradient's far end, of the noise, texture and stripes.
    background_variation: int = 40
    rotation_prob: float = 0.5
    rotation: tuple[float, float] = (-4.0, 4.0)
    perspective_prob: float = 0.3
    # Largest inward shift of each corner, as a fraction of the image height.
    perspective_strength: float = 0.15
    # Curved baselines for 2D models: each column of the text is shifted vertically along an
    # arc or a sine wave. Off by default; no random number is drawn while curve_prob is 0, so
    # images rendered without curves are unchanged.
    curve_prob: float = 0.0
    curves: dict[str, float] = field(default_factory=lambda: {"arc": 0.5, "wave": 0.5})
    # Largest vertical shift, as a fraction of the text height; wave periods across the word.
    curve_amount: tuple[float, float] = (0.3, 1.0)
    wave_cycles: tuple[float, float] = (0.5, 1.5)
    blur_prob: float = 0.3
    blur_radius: tuple[float, float] = (0.3, 1.2)
    noise_prob: float = 0.3
    noise_sigma: tuple[float, float] = (2.0, 10.0)
    # Downscale then upscale back, imitating small far-away text.
    lowres_prob: float = 0.15
    lowres_scale: tuple[float, float] = (0.4, 0.8)
    # --- Realism effects: each off by default (probability 0 draws no random number). ---
    # Colours of signs: a background at full saturation (not pulled towards grey), and text in
    # plain black or white (whichever contrasts more with the background).
    vivid_prob: float = 0.0
    plain_text_prob: float = 0.0
    # Neighbouring text cut by the crop, as in word boxes cut out of a sign or a page: with
    # neighbour_prob, each side is given a neighbour with its probability in neighbour_sides.
    # Left/right: a fragment of neighbour_chars characters on the word's baseline, neighbour_gap
    # font sizes away, of which neighbour_visible font sizes (at most 70% of its width) lie
    # inside the crop. Above/below: a line of text neighbour_line_spacing font sizes away whose
    # nearest neighbour_visible font sizes lie inside the crop. The label stays the word.
    neighbour_prob: float = 0.0
    neighbour_sides: dict[str, float] = field(
        default_factory=lambda: {"left": 0.5, "right": 0.5, "above": 0.2, "below": 0.2}
    )
    neighbour_chars: tuple[int, int] = (1, 3)
    neighbour_gap: tuple[float, float] = (0.2, 0.5)
    neighbour_visible: tuple[float, float] = (0.05, 0.35)
    neighbour_line_spacing: tuple[float, float] = (1.0, 1.3)
    # Tight crops that cut a little off the word's own edges: each side's padding is replaced by
    # a cut of this many font sizes (before any neighbour sets that side).
    tight_crop_prob: float = 0.0
    tight_crop: tuple[float, float] = (0.0, 0.06)
    # Outlined text: a stroke this many font sizes wide, in a colour contrasting with the text.
    outline_prob: float = 0.0
    outline_width: tuple[float, float] = (0.03, 0.1)
    # Drop shadow: the glyphs (with their outline) shifted by shadow_offset font sizes (x either
    # way, y down), blurred by shadow_blur font sizes, in a darkened background colour.
    shadow_prob: float = 0.0
    shadow_offset: tuple[float, float] = (0.03, 0.1)
    shadow_blur: tuple[float, float] = (0.0, 0.06)
    shadow_opacity: tuple[float, float] = (0.5, 1.0)
    # Text filled with a gradient or smooth blotches around its colour instead of a flat fill.
    text_texture_prob: float = 0.0
    text_texture_variation: int = 30
    # Uneven lighting: a linear or radial shade darkening (or washing out, as glare) the crop
    # by up to shading_strength.
    shading_prob: float = 0.0
    shading_strength: tuple[float, float] = (0.1, 0.4)
    # Motion blur along a random direction; Pillow kernels are 3x3 or 5x5.
    motion_blur_prob: float = 0.0
    motion_blur_sizes: tuple[int, ...] = (3, 5)
    # JPEG re-encoding at a random quality, the last step before the resize to ``height``.
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (15, 70)
    # Final height in pixels (width keeps the aspect ratio); None keeps the natural size.
    height: int | None = None

    def __post_init__(self) -> None:
        # Hydra/YAML hand over ListConfig/DictConfig; plain types keep the config picklable.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                setattr(self, f.name, dict(value))
            elif isinstance(value, Sequence) and not isinstance(value, str):
                setattr(self, f.name, tuple(value))
        unknown = set(self.backgrounds) - set(BACKGROUNDS)
        if unknown or not any(w > 0 for w in self.backgrounds.values()):
            raise ValueError(f"backgrounds needs positive weights over {BACKGROUNDS}")
        unknown = set(self.curves) - set(CURVES)
        if unknown or not any(w > 0 for w in self.curves.values()):
            raise ValueError(f"curves needs positive weights over {CURVES}")
        if self.min_contrast >= 21:
            raise ValueError("min_contrast must be below 21, the black-on-white maximum")
        unknown = set(self.neighbour_sides) - set(NEIGHBOUR_SIDES)
        if unknown:
            raise ValueError(f"neighbour_sides takes weights over {NEIGHBOUR_SIDES}")
        bad = [name for name in _PROBABILITIES if not 0 <= getattr(self, name) <= 1]
        if bad:
            raise ValueError(f"probabilities must lie in [0, 1]: {bad}")
        if not self.motion_blur_sizes or set(self.motion_blur_sizes) - {3, 5}:
            raise ValueError("motion_blur_sizes takes 3 and/or 5 (Pillow's kernel sizes)")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 95:
            raise ValueError("jpeg_quality must be an increasing range within [1, 95]")

    @classmethod
    def from_any(cls, value: RenderConfig | dict[str, Any] | None) -> RenderConfig:
        """Accept a config, a plain dict (Hydra/YAML) or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        return cls(**dict(value))


@dataclass(frozen=True)
class _LoadedFont:
    font: ImageFont.FreeTypeFont
    cap_top: int  # top of "H" in anchor "la" coordinates
    baseline: int


@functools.lru_cache(maxsize=8192)  # all 262 fonts x 21 sizes; 2,048 missed 2 lookups in 3
def _load_font(path: str, size: int) -> _LoadedFont:
    """``ImageFont.truetype`` costs about a millisecond, far more than drawing a word."""
    font = ImageFont.truetype(path, size)
    return _LoadedFont(font, font.getbbox("H")[1], font.getmetrics()[0])


_Glyphs = tuple[Any, tuple[int, int]]  # a core "L" mask and its offset from the draw position


def _glyphs(font: ImageFont.FreeTypeFont, text: str, stroke: int = 0) -> _Glyphs:
    """The text's mask and its offset from the draw position, by the very call
    ``ImageDraw.text`` makes (so the same pixels); the offset and the mask's size are
    ``font.getbbox(text, stroke_width=stroke)``, which would lay the glyphs out a second time."""
    return font.getmask2(
        text, "L", stroke_width=stroke, anchor="la", ink=255, start=(0.0, 0.0), stroke_filled=True
    )


class _Layouts(dict):
    """The glyphs of each (text, stroke) drawn in one word, laid out once: a neighbour's box and
    its mask come from one call, the text's fill reuses its outline's layout at stroke 0."""

    def __init__(self, font: ImageFont.FreeTypeFont) -> None:
        super().__init__()
        self.font = font

    def __missing__(self, key: tuple[str, int]) -> _Glyphs:
        glyphs = self[key] = _glyphs(self.font, *key)
        return glyphs


def _box(glyphs: _Glyphs) -> tuple[int, int, int, int]:
    mask, (left, top) = glyphs
    return left, top, left + mask.size[0], top + mask.size[1]


def _draw(canvas: Image.Image, draws: list[tuple[int, int, _Glyphs]]) -> None:
    """Blend each mask in white at its position, as ``ImageDraw.text(fill=255)`` does."""
    core = ImageDraw.Draw(canvas).draw
    for x, y, (mask, (dx, dy)) in draws:
        core.draw_bitmap((x + dx, y + dy), mask, 255)


def _channel_luminance(c: int) -> float:
    c /= 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


# Linearised value of each 8-bit level (keys compare equal to ints, floats and numpy numbers of
# that value): the colour draws call contrast_ratio about ten times a sample, and the table
# holds the very floats the formula gives.
_CHANNEL_LUMINANCE = {c: _channel_luminance(c) for c in range(256)}


def _luminance(rgb: tuple[int, int, int]) -> float:
    r, g, b = rgb
    table = _CHANNEL_LUMINANCE
    try:
        return 0.2126 * table[r] + 0.7152 * table[g] + 0.0722 * table[b]
    except KeyError:
        r, g, b = map(_channel_luminance, rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG contrast ratio, 1 (identical luminance) to 21 (black on white)."""
    la, lb = _luminance(a), _luminance(b)
    if la < lb:
        la, lb = lb, la
    return (la + 0.05) / (lb + 0.05)


def _random_colour(rng: random.Random, vivid: bool = False) -> tuple[int, int, int]:
    """A random colour pulled a random way towards its grey: real signs are rarely all neon.
    ``vivid`` keeps the colour's full saturation (and draws one number fewer)."""
    r, g, b = rng.randrange(256), rng.randrange(256), rng.randrange(256)
    grey, keep = (r + g + b) / 3, 1.0 if vivid else rng.random()
    return (
        round(grey + keep * (r - grey)),
        round(grey + keep * (g - grey)),
        round(grey + keep * (b - grey)),
    )


def _colours(
    rng: random.Random, min_contrast: float, vivid_prob: float = 0.0, plain_text_prob: float = 0.0
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(text, background); rejection sampling keeps colours varied but the text readable.
    With ``vivid_prob`` the background keeps its full saturation; with ``plain_text_prob`` the
    text is black or white, whichever stands out more (no draw for either while it is 0)."""
    vivid = vivid_prob > 0 and rng.random() < vivid_prob
    background = _random_colour(rng, vivid)
    if plain_text_prob > 0 and rng.random() < plain_text_prob:
        black, white = (0, 0, 0), (255, 255, 255)
        best = max((black, white), key=lambda c: contrast_ratio(c, background))
        if contrast_ratio(best, background) >= min_contrast:
            return best, background
    for _ in range(20):
        text = _random_colour(rng)
        if contrast_ratio(text, background) >= min_contrast:
            return text, background
    # Mid-grey backgrounds admit few colours; fall back to the better of black and white.
    black, white = (0, 0, 0), (255, 255, 255)
    best = max((black, white), key=lambda c: contrast_ratio(c, background))
    if contrast_ratio(best, background) < min_contrast:
        background = (255, 255, 255) if best == black else (0, 0, 0)
    return best, background


def _jitter(rng: random.Random, colour: tuple[int, int, int], amount: int) -> tuple[int, ...]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)


def _background(
    rng: random.Random,
    size: tuple[int, int],
    text: tuple[int, int, int],
    base: tuple[int, int, int],
    cfg: RenderConfig,
) -> Image.Image:
    kinds = [k for k in BACKGROUNDS if cfg.backgrounds.get(k, 0) > 0]
    (kind,) = rng.choices(kinds, [cfg.backgrounds[k] for k in kinds])
    if kind == "gradient":
        far = _jitter(rng, base, cfg.background_variation)
        if contrast_ratio(text, far) >= cfg.min_contrast:
            w, h = size
            horizontal = rng.random() < 0.7
            axis = _unit_ramp(w if horizontal else h)
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
        far = _jitter(rng, base, cfg.background_variation)
        if contrast_ratio(text, far) >= cfg.min_contrast:
            return _stripes(rng, size, base, far)
    elif kind == "blocks":
        second = _contrasting_colour(rng, text, cfg.min_contrast)
        if second is not None:
            return _blocks(rng, size, base, second)
    return Image.new("RGB", size, base)


@functools.lru_cache(maxsize=4096)
def _unit_ramp(n: int) -> np.ndarray:
    """``np.linspace(0, 1, n)`` in float32, read-only and cached: numpy's linspace costs more
    than the arithmetic on the ramp it makes."""
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    ramp.flags.writeable = False
    return ramp


def _to_image(pixels: np.ndarray) -> Image.Image:
    """Clip in place (callers hand over a fresh array) and cast, as ``np.clip`` then astype."""
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8), "RGB")


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates as float32 (h, 1) and (1, w): they broadcast to the values
    of ``np.mgrid[0:h, 0:w].astype(np.float32)`` element by element, without two full grids."""
    return (
        np.arange(h, dtype=np.float32)[:, None],
        np.arange(w, dtype=np.float32)[None, :],
    )


def _smooth_field(np_rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int]):
    """A (h, w) float32 field of unit-variance values on a coarse ``cells`` grid, upscaled."""
    coarse = np_rng.standard_normal(cells).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize(size, Image.Resampling.BICUBIC))


def _texture(
    rng: random.Random, size: tuple[int, int], base: tuple[int, int, int], variation: int
) -> Image.Image:
    """Photo-like surface: blotches at three scales, a faint tint and pixel grain."""
    np_rng = np.random.default_rng(rng.getrandbits(64))
    w, h = size
    light = sum(
        amplitude * _smooth_field(np_rng, size, cells)
        for amplitude, cells in ((0.5, (2, 4)), (0.3, (5, 12)), (0.2, (10, 30)))
    )
    light = light + 0.15 * np_rng.standard_normal((h, w), dtype=np.float32)
    tint = _smooth_field(np_rng, size, (2, 4))[..., None] * np_rng.normal(0, 0.1, 3)
    # base + variation * (light + tint), in place on the float64 tint: the same sums.
    tint += light[..., None]
    tint *= variation
    tint += np.array(base, dtype=np.float32)
    return _to_image(tint)


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
    ys, xs = _grid(w, h)
    t = ((xs * math.cos(angle) + ys * math.sin(angle)) / period + phase) % 1.0
    share = (t < duty).astype(np.float32) if hard else 0.5 + 0.5 * np.sin(2 * np.pi * t)
    pixels = (1 - share[..., None]) * np.array(base) + share[..., None] * np.array(far)
    return _to_image(pixels)


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
    ys, xs = _grid(w, h)
    share = np.clip((xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle) + 0.5, 0, 1)
    pixels = (1 - share[..., None]) * np.array(base) + share[..., None] * np.array(second)
    return _to_image(pixels)


def _contrasting_colour(
    rng: random.Random, other: tuple[int, int, int], min_contrast: float, tries: int = 10
) -> tuple[int, int, int] | None:
    """A random colour at least ``min_contrast`` from ``other``, or None after ``tries``."""
    for _ in range(tries):
        colour = _random_colour(rng)
        if contrast_ratio(colour, other) >= min_contrast:
            return colour
    return None


def _outline_colour(
    rng: random.Random, text: tuple[int, int, int], min_contrast: float
) -> tuple[int, int, int]:
    colour = _contrasting_colour(rng, text, min_contrast)
    if colour is None:
        colour = max(((0, 0, 0), (255, 255, 255)), key=lambda c: contrast_ratio(c, text))
    return colour


def _text_fill(
    rng: random.Random, size: tuple[int, int], text: tuple[int, int, int], variation: int
) -> Image.Image:
    """The text's colour as a gradient towards a nearby colour, or as smooth blotches."""
    w, h = size
    far = np.array(_jitter(rng, text, variation), dtype=np.float32)
    if rng.random() < 0.5:
        horizontal = rng.random() < 0.5
        axis = _unit_ramp(w if horizontal else h)
        share = np.broadcast_to(axis[None, :] if horizontal else axis[:, None], (h, w))
    else:
        np_rng = np.random.default_rng(rng.getrandbits(64))
        share = np.clip(0.5 + 0.5 * _smooth_field(np_rng, size, (2, 6)), 0, 1)
    pixels = (1 - share[..., None]) * np.array(text, dtype=np.float32) + share[..., None] * far
    return _to_image(pixels)


def _shadow(
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


def _shade(image: Image.Image, rng: random.Random, cfg: RenderConfig) -> Image.Image:
    """Uneven light: a linear or radial falloff that darkens, or as glare washes out."""
    w, h = image.size
    strength = rng.uniform(*cfg.shading_strength)
    ys, xs = _grid(w, h)
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
    return _to_image(pixels)


def _motion_blur(image: Image.Image, rng: random.Random, sizes: Sequence[int]) -> Image.Image:
    """Average along a line through the kernel's centre at a random angle."""
    k = rng.choice(tuple(sizes))
    angle = rng.uniform(0, math.pi)
    c, dx, dy = (k - 1) / 2, math.cos(angle), math.sin(angle)
    weights = [max(0.0, 1 - abs((x - c) * dy - (y - c) * dx)) for y in range(k) for x in range(k)]
    return image.filter(ImageFilter.Kernel((k, k), weights, scale=sum(weights)))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer, formats=("JPEG",)) as decoded:
        return decoded.convert("RGB")


def _perspective_coeffs(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> list[float]:
    """Coefficients mapping output (``dst``) points back to input (``src``), PIL's convention."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs)).tolist()


def _perspective(mask: Image.Image, rng: random.Random, strength: float) -> Image.Image:
    w, h = mask.size
    shift = strength * h
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    inward = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
    dst = [
        (x + sx * rng.uniform(0, shift), y + sy * rng.uniform(0, shift))
        for (x, y), (sx, sy) in zip(corners, inward, strict=True)
    ]
    coeffs = _perspective_coeffs(corners, dst)
    return mask.transform(mask.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)


def _curve(mask: Image.Image, rng: random.Random, cfg: RenderConfig) -> Image.Image:
    """Shift each column down by d(x) (an arc or a wave), piecewise linear over narrow strips."""
    kinds = [k for k in CURVES if cfg.curves.get(k, 0) > 0]
    (kind,) = rng.choices(kinds, [cfg.curves[k] for k in kinds])
    w, h = mask.size
    amount = rng.uniform(*cfg.curve_amount) * h
    xs = np.unique(np.linspace(0, w, min(w, 32) + 1).round().astype(int))
    if kind == "arc":
        shift = rng.choice((-1.0, 1.0)) * amount * (1 - (2 * xs / w - 1) ** 2)
    else:
        cycles, phase = rng.uniform(*cfg.wave_cycles), rng.uniform(0, 2 * np.pi)
        shift = amount * np.sin(2 * np.pi * cycles * xs / w + phase)
    shift -= shift.min()
    out_h = h + int(np.ceil(shift.max()))
    # MESH maps each output rectangle to an input quad (NW, SW, SE, NE): input y = y - d(x).
    mesh = [
        ((x0, 0, x1, out_h), (x0, -d0, x0, out_h - d0, x1, out_h - d1, x1, -d1))
        for x0, x1, d0, d1 in zip(xs[:-1], xs[1:], shift[:-1], shift[1:], strict=True)
    ]
    return mask.transform((w, out_h), Image.Transform.MESH, mesh, Image.Resampling.BILINEAR)


def _fragment(rng: random.Random, pool: str, n: int) -> str:
    return "".join(rng.choice(pool) for _ in range(n))


def _neighbours(
    rng: random.Random,
    cfg: RenderConfig,
    font: _LoadedFont,
    size: int,
    stroke: int,
    box: tuple[int, int, int, int],
    pads: list[int],
    pool: str,
    layouts: _Layouts,
) -> list[tuple[int, int, str]]:
    """Text beside the word, cut by the crop: sets ``pads`` (l, t, r, b) for the sides it
    takes and returns ``(dx, dy, text)`` draws relative to the word's own draw position."""
    left, top, right, bottom = box
    extras: list[tuple[int, int, str]] = []
    sides = [s for s in NEIGHBOUR_SIDES if cfg.neighbour_sides.get(s, 0) > 0]
    for side in sides:
        if rng.random() >= cfg.neighbour_sides[side]:
            continue
        visible = rng.uniform(*cfg.neighbour_visible) * size
        if side in ("left", "right"):
            text = _fragment(rng, pool, rng.randint(*cfg.neighbour_chars))
            # The box of its outlined glyphs, as ``getbbox(text, stroke_width=stroke)`` gives.
            f_left, _, f_right, _ = _box(layouts[text, stroke])
            gap = rng.uniform(*cfg.neighbour_gap) * size
            visible = min(visible, 0.7 * (f_right - f_left))
            if side == "left":
                pads[0] = round(gap + visible)
                extras.append((round(left - gap - f_right), 0, text))
            else:
                pads[2] = round(gap + visible)
                extras.append((round(right + gap - f_left), 0, text))
        else:
            # A line of text wider than the word, with spaces, starting left of the crop.
            n = (right - left) // max(1, size // 2) + 6
            text = "".join(" " if rng.random() < 0.15 else rng.choice(pool) for _ in range(n))
            spacing = rng.uniform(*cfg.neighbour_line_spacing) * size
            dx = round(left - rng.uniform(0.0, 1.5) * size)
            if side == "above":
                # Its baseline lies ``visible`` below the crop's top edge.
                pads[1] = max(0, round(spacing - font.baseline + visible + top))
                extras.append((dx, -round(spacing), text))
            else:
                # Its cap top lies ``visible`` above the crop's bottom edge.
                pads[3] = max(0, round(spacing + font.cap_top + visible - bottom))
                extras.append((dx, round(spacing), text))
    return extras


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
    loaded = _load_font(str(font_path), size)
    stroke = 0
    if cfg.outline_prob > 0 and rng.random() < cfg.outline_prob:
        stroke = max(1, round(rng.uniform(*cfg.outline_width) * size))
    layouts = _Layouts(loaded.font)
    glyphs = layouts[text, 0]
    stroked = layouts[text, stroke]
    left, top, right, bottom = _box(stroked)
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
        extras = _neighbours(rng, cfg, loaded, size, stroke, box, pads, pool, layouts)
    pad_l, pad_t, pad_r, pad_b = pads
    canvas = (max(1, right - left + pad_l + pad_r), max(1, bottom - top + pad_t + pad_b))
    x, y = pad_l - left, pad_t - top
    extras_at = [(x + dx, y + dy, extra) for dx, dy, extra in extras]
    mask = Image.new("L", canvas, 0)
    _draw(mask, [(x, y, glyphs), *((a, b, layouts[e, 0]) for a, b, e in extras_at)])
    if stroke:
        # Fill and outline masks travel through the geometry together as two bands.
        outline = Image.new("L", canvas, 0)
        pieces = ((a, b, layouts[e, stroke]) for a, b, e in extras_at)
        _draw(outline, [(x, y, stroked), *pieces])
        mask = Image.merge("RGB", (mask, outline, outline))

    if cfg.curve_prob > 0 and rng.random() < cfg.curve_prob:
        mask = _curve(mask, rng, cfg)
    if rng.random() < cfg.rotation_prob:
        angle = rng.uniform(*cfg.rotation)
        mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    if rng.random() < cfg.perspective_prob:
        mask = _perspective(mask, rng, cfg.perspective_strength)
    fill, outline_mask = (mask.getchannel(0), mask.getchannel(1)) if stroke else (mask, None)

    text_colour, base = _colours(rng, cfg.min_contrast, cfg.vivid_prob, cfg.plain_text_prob)
    image = _background(rng, mask.size, text_colour, base, cfg)
    if cfg.shadow_prob > 0 and rng.random() < cfg.shadow_prob:
        _shadow(image, fill if outline_mask is None else outline_mask, base, size, rng, cfg)
    if outline_mask is not None:
        image.paste(_outline_colour(rng, text_colour, cfg.min_contrast), (0, 0), outline_mask)
    if cfg.text_texture_prob > 0 and rng.random() < cfg.text_texture_prob:
        image.paste(
            _text_fill(rng, mask.size, text_colour, cfg.text_texture_variation), (0, 0), fill
        )
    else:
        image.paste(text_colour, (0, 0), fill)
    if cfg.shading_prob > 0 and rng.random() < cfg.shading_prob:
        image = _shade(image, rng, cfg)

    if rng.random() < cfg.lowres_prob:
        scale = rng.uniform(*cfg.lowres_scale)
        small = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(small, Image.Resampling.BILINEAR).resize(
            image.size, Image.Resampling.BILINEAR
        )
    if rng.random() < cfg.blur_prob:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*cfg.blur_radius)))
    if cfg.motion_blur_prob > 0 and rng.random() < cfg.motion_blur_prob:
        image = _motion_blur(image, rng, cfg.motion_blur_sizes)
    if rng.random() < cfg.noise_prob:
        np_rng = np.random.default_rng(rng.getrandbits(64))
        noise = np_rng.normal(0.0, rng.uniform(*cfg.noise_sigma), (image.height, image.width, 1))
        pixels = np.asarray(image, dtype=np.float32)
        pixels += noise.astype(np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8), "RGB")
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        image = _jpeg(image, rng.randint(*cfg.jpeg_quality))
    if cfg.height is not None and image.height != cfg.height:
        width = max(1, round(image.width * cfg.height / image.height))
        image = image.resize((width, cfg.height), Image.Resampling.BILINEAR)
    return image
