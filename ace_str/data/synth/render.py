"""Draw one word as a cropped scene-text-like image with PIL and numpy.

Geometry (rotation, perspective) is applied to the text mask alone and the background is made
afterwards at the final size, so no fill-colour corners appear; blur, noise and low resolution
are applied last, to the composed image, as a camera would.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

BACKGROUNDS = ("flat", "gradient", "noise")
CURVES = ("arc", "wave")


@dataclass
class RenderConfig:
    """Every randomisation knob of `render_word`; ranges are inclusive ``(low, high)``."""

    font_size: tuple[int, int] = (28, 48)
    # Padding on each side, as a fraction of the font size.
    padding: tuple[float, float] = (0.02, 0.3)
    # WCAG contrast ratio between text and background (1 = none, 21 = black on white).
    min_contrast: float = 3.0
    backgrounds: dict[str, float] = field(
        default_factory=lambda: {"flat": 0.5, "gradient": 0.3, "noise": 0.2}
    )
    # Largest per-channel offset of the gradient's far end and of the noise texture.
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


@functools.lru_cache(maxsize=2048)
def _load_font(path: str, size: int) -> _LoadedFont:
    """``ImageFont.truetype`` costs about a millisecond, far more than drawing a word."""
    font = ImageFont.truetype(path, size)
    return _LoadedFont(font, font.getbbox("H")[1], font.getmetrics()[0])


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = map(channel, rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG contrast ratio, 1 (identical luminance) to 21 (black on white)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    """A random colour pulled a random way towards its grey: real signs are rarely all neon."""
    r, g, b = rng.randrange(256), rng.randrange(256), rng.randrange(256)
    grey, keep = (r + g + b) / 3, rng.random()
    return (
        round(grey + keep * (r - grey)),
        round(grey + keep * (g - grey)),
        round(grey + keep * (b - grey)),
    )


def _colours(
    rng: random.Random, min_contrast: float
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(text, background); rejection sampling keeps colours varied but the text readable."""
    background = _random_colour(rng)
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
            axis = np.linspace(0.0, 1.0, w if horizontal else h, dtype=np.float32)
            ramp = (1 - axis)[:, None] * np.array(base) + axis[:, None] * np.array(far)
            ramp = ramp[None, :, :] if horizontal else ramp[:, None, :]
            pixels = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8)
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
        pixels = np.asarray(offsets, dtype=np.int16) - 128 + np.array(base, dtype=np.int16)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return Image.new("RGB", size, base)


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


def render_word(
    text: str, font_path: str | Path, rng: random.Random, cfg: RenderConfig
) -> Image.Image:
    """An RGB crop of ``text``; all randomness comes from ``rng``, so equal seeds give equal
    pixels."""
    size = rng.randint(*cfg.font_size)
    loaded = _load_font(str(font_path), size)
    left, top, right, bottom = loaded.font.getbbox(text)
    # At least cap height to baseline, so "ace" keeps its x-height look instead of filling
    # the crop like "ACE" would.
    top, bottom = min(top, loaded.cap_top), max(bottom, loaded.baseline)
    pad_l, pad_t, pad_r, pad_b = (round(rng.uniform(*cfg.padding) * size) for _ in range(4))
    mask = Image.new("L", (right - left + pad_l + pad_r, bottom - top + pad_t + pad_b), 0)
    ImageDraw.Draw(mask).text((pad_l - left, pad_t - top), text, fill=255, font=loaded.font)

    if cfg.curve_prob > 0 and rng.random() < cfg.curve_prob:
        mask = _curve(mask, rng, cfg)
    if rng.random() < cfg.rotation_prob:
        angle = rng.uniform(*cfg.rotation)
        mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    if rng.random() < cfg.perspective_prob:
        mask = _perspective(mask, rng, cfg.perspective_strength)

    text_colour, base = _colours(rng, cfg.min_contrast)
    image = _background(rng, mask.size, text_colour, base, cfg)
    image.paste(text_colour, (0, 0), mask)

    if rng.random() < cfg.lowres_prob:
        scale = rng.uniform(*cfg.lowres_scale)
        small = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(small, Image.Resampling.BILINEAR).resize(
            image.size, Image.Resampling.BILINEAR
        )
    if rng.random() < cfg.blur_prob:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*cfg.blur_radius)))
    if rng.random() < cfg.noise_prob:
        np_rng = np.random.default_rng(rng.getrandbits(64))
        noise = np_rng.normal(0.0, rng.uniform(*cfg.noise_sigma), (image.height, image.width, 1))
        pixels = np.asarray(image, dtype=np.float32) + noise.astype(np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if cfg.height is not None and image.height != cfg.height:
        width = max(1, round(image.width * cfg.height / image.height))
        image = image.resize((width, cfg.height), Image.Resampling.BILINEAR)
    return image
