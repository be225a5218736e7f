"""Text, background and outline colours, drawn so the text stays readable (WCAG contrast)."""

from __future__ import annotations

import random


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


def pick_colours(
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


def jitter(rng: random.Random, colour: tuple[int, int, int], amount: int) -> tuple[int, ...]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)


def contrasting_colour(
    rng: random.Random, other: tuple[int, int, int], min_contrast: float, tries: int = 10
) -> tuple[int, int, int] | None:
    """A random colour at least ``min_contrast`` from ``other``, or None after ``tries``."""
    for _ in range(tries):
        colour = _random_colour(rng)
        if contrast_ratio(colour, other) >= min_contrast:
            return colour
    return None


def outline_colour(
    rng: random.Random, text: tuple[int, int, int], min_contrast: float
) -> tuple[int, int, int]:
    colour = contrasting_colour(rng, text, min_contrast)
    if colour is None:
        colour = max(((0, 0, 0), (255, 255, 255)), key=lambda c: contrast_ratio(c, text))
    return colour
