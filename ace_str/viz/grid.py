"""Captioned image grids: validation images in TensorBoard, worst errors in evaluation reports,
synthetic samples beside real ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def _pixels(image: torch.Tensor | Image.Image) -> np.ndarray:
    """(H, W) or (H, W, 3) floats in [0, 1] from a (C, H, W) tensor in [-1, 1] or a PIL image."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("L" if image.mode in ("L", "1") else "RGB")) / 255.0
    return (image.float() * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()


def draw_captioned(
    axes: Any, images: Sequence[torch.Tensor | Image.Image], captions: Sequence[str]
) -> None:
    """Draw images (tensors in [-1, 1] or PIL images) on a grid of axes, titled by captions."""
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        pixels = _pixels(image)
        ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(caption, fontsize=8)


def captioned_grid(images: Sequence[torch.Tensor], captions: Sequence[str], columns: int = 4):
    """A matplotlib figure of images in [-1, 1], each titled with its caption."""
    rows = max(1, (len(images) + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 1.2 * rows), squeeze=False)
    draw_captioned(axes, images, captions)
    fig.tight_layout()
    return fig


def comparison_grid(
    panels: Sequence[tuple[str, Sequence[torch.Tensor | Image.Image], Sequence[str]]],
    columns: int = 4,
):
    """One figure with a titled, captioned grid per ``(title, images, captions)`` panel, side by
    side (e.g. synthetic samples beside real crops)."""
    rows = max(1, max((len(images) + columns - 1) // columns for _, images, _ in panels))
    fig = plt.figure(figsize=(3 * columns * len(panels), 1.2 * rows + 0.6), layout="constrained")
    for sub, (title, images, captions) in zip(
        fig.subfigures(1, len(panels), squeeze=False).flat, panels, strict=True
    ):
        draw_captioned(sub.subplots(rows, columns, squeeze=False), images, captions)
        sub.suptitle(title, fontsize=11)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write a figure as a PNG and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_grid(
    images: Sequence[torch.Tensor], captions: Sequence[str], path: str | Path, columns: int = 4
) -> Path:
    """Write a captioned grid as a PNG and release the figure."""
    return save_figure(captioned_grid(images, captions, columns), path)
