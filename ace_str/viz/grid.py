"""Captioned image grids: validation images in TensorBoard, worst errors in evaluation reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def captioned_grid(images: Sequence[torch.Tensor], captions: Sequence[str], columns: int = 4):
    """A matplotlib figure of images in [-1, 1], each titled with its caption."""
    rows = max(1, (len(images) + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 1.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        pixels = (image.float() * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
        ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(caption, fontsize=8)
    fig.tight_layout()
    return fig


def save_grid(
    images: Sequence[torch.Tensor], captions: Sequence[str], path: str | Path, columns: int = 4
) -> Path:
    """Write a captioned grid as a PNG and release the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = captioned_grid(images, captions, columns)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
