"""Geometry applied to the text mask alone: perspective and curved baselines."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from ace_str.data.synth.config import CURVES, RenderConfig


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


def perspective(mask: Image.Image, rng: random.Random, strength: float) -> Image.Image:
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


def curve(mask: Image.Image, rng: random.Random, cfg: RenderConfig) -> Image.Image:
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
