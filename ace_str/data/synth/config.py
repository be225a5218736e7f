"""The knobs of the synthetic word renderer.

The realism effects (neighbouring text cut by the crop, tight crops, outlines, drop shadows,
textured text, uneven lighting, motion blur, JPEG artefacts and the textured backgrounds) are
off by default; ``configs/data/synth_real.yaml`` turns them on. While an effect's probability is
0 it draws no random number, so images rendered without it are byte-identical to those of a
renderer that never had it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

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
    "width_scale_prob",
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
    # Condensed or expanded lettering: the text's width (its neighbours' too) scaled by a factor
    # drawn log-uniformly from width_scale before any geometry. Real signs set short words in
    # narrow boxes; a 2D canvas keeps their proportions where a 1D crop stretches them.
    width_scale_prob: float = 0.0
    width_scale: tuple[float, float] = (0.6, 1.5)
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
        if not 0 < self.width_scale[0] <= self.width_scale[1]:
            raise ValueError("width_scale must be an increasing range of positive factors")
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
