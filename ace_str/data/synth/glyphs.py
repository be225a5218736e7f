"""Fonts and glyph layout: every word and neighbouring fragment is laid out once per draw."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ace_str.data.synth.config import NEIGHBOUR_SIDES, RenderConfig


@dataclass(frozen=True)
class LoadedFont:
    font: ImageFont.FreeTypeFont
    cap_top: int  # top of "H" in anchor "la" coordinates
    baseline: int


@functools.lru_cache(maxsize=8192)  # all 262 fonts x 21 sizes; 2,048 missed 2 lookups in 3
def load_font(path: str, size: int) -> LoadedFont:
    """``ImageFont.truetype`` costs about a millisecond, far more than drawing a word."""
    font = ImageFont.truetype(path, size)
    return LoadedFont(font, font.getbbox("H")[1], font.getmetrics()[0])


Glyphs = tuple[Any, tuple[int, int]]  # a core "L" mask and its offset from the draw position


def _glyphs(font: ImageFont.FreeTypeFont, text: str, stroke: int = 0) -> Glyphs:
    """The text's mask and its offset from the draw position, by the very call
    ``ImageDraw.text`` makes (so the same pixels); the offset and the mask's size are
    ``font.getbbox(text, stroke_width=stroke)``, which would lay the glyphs out a second time."""
    return font.getmask2(
        text, "L", stroke_width=stroke, anchor="la", ink=255, start=(0.0, 0.0), stroke_filled=True
    )


class Layouts(dict):
    """The glyphs of each (text, stroke) drawn in one word, laid out once: a neighbour's box and
    its mask come from one call, the text's fill reuses its outline's layout at stroke 0."""

    def __init__(self, font: ImageFont.FreeTypeFont) -> None:
        super().__init__()
        self.font = font

    def __missing__(self, key: tuple[str, int]) -> Glyphs:
        glyphs = self[key] = _glyphs(self.font, *key)
        return glyphs


def glyph_box(glyphs: Glyphs) -> tuple[int, int, int, int]:
    mask, (left, top) = glyphs
    return left, top, left + mask.size[0], top + mask.size[1]


def draw_glyphs(canvas: Image.Image, draws: list[tuple[int, int, Glyphs]]) -> None:
    """Blend each mask in white at its position, as ``ImageDraw.text(fill=255)`` does."""
    core = ImageDraw.Draw(canvas).draw
    for x, y, (mask, (dx, dy)) in draws:
        core.draw_bitmap((x + dx, y + dy), mask, 255)


def _fragment(rng: random.Random, pool: str, n: int) -> str:
    return "".join(rng.choice(pool) for _ in range(n))


def neighbours(
    rng: random.Random,
    cfg: RenderConfig,
    font: LoadedFont,
    size: int,
    stroke: int,
    box: tuple[int, int, int, int],
    pads: list[int],
    pool: str,
    layouts: Layouts,
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
            f_left, _, f_right, _ = glyph_box(layouts[text, stroke])
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
