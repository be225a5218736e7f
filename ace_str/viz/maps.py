"""Pictures of a 2D prediction map (the paper's Fig. 5): what each cell reads, how surely.

One figure, four panels: the original image, the normalised input, the argmax map (each cell
labelled with its character, blanks left empty, coloured by confidence) and that map laid
over the input. Bare matplotlib Figures (no pyplot), so it works headless and in workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor, nn

from ace_str.data.charset import Charset
from ace_str.models.decoding import BLANK

CMAP = "viridis"


@dataclass
class MapReading:
    """The argmax class (H, W), its probability (H, W) and the decoded text of one input."""

    best: np.ndarray
    prob: np.ndarray
    text: str


@torch.inference_mode()
def read_map(model: nn.Module, charset: Charset, inputs: Tensor) -> MapReading:
    """Run ``model`` on one normalised (C, H, W) input; a 1D (T, C) output is a 1xT map."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        logits = model(inputs[None].to(device))
        sequences, _ = model.head.decode(logits)
    finally:
        model.train(was_training)
    logits = logits[0].float()
    if logits.dim() == 2:
        logits = logits[None]
    prob, best = logits.softmax(dim=-1).max(dim=-1)
    return MapReading(best.cpu().numpy(), prob.cpu().numpy(), charset.decode(sequences[0]))


def _pixels(inputs: Tensor) -> np.ndarray:
    """A [-1, 1] (C, H, W) tensor as an (H, W[, 3]) array in [0, 1]."""
    return (
        (inputs.detach().float().cpu() * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
    )


def _draw_cells(ax, reading: MapReading, charset: Charset, extent: tuple[float, float]) -> None:
    """Non-blank cells coloured by confidence, each labelled with its character."""
    height, width = reading.best.shape
    colours = colormaps[CMAP](reading.prob)
    colours[..., 3] = np.where(reading.best != BLANK, 0.55, 0.0)
    ax.imshow(colours, extent=(0, extent[1], extent[0], 0), interpolation="nearest")
    cell_h, cell_w = extent[0] / height, extent[1] / width
    for i, j in zip(*np.nonzero(reading.best != BLANK), strict=True):
        ax.text(
            (j + 0.5) * cell_w,
            (i + 0.5) * cell_h,
            charset.decode([int(reading.best[i, j])]),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if reading.prob[i, j] < 0.6 else "black",
        )


def input_map_figure(
    model: nn.Module, charset: Charset, inputs: Tensor, original: Image.Image | None = None
) -> Figure:
    """The figure for one normalised (C, H, W) input, e.g. a validation batch's first image
    for TensorBoard (``writer.add_figure``); ``original`` adds the raw image panel."""
    reading = read_map(model, charset, inputs)
    pixels = _pixels(inputs)
    size = (pixels.shape[0], pixels.shape[1])
    grey = {"cmap": "gray", "vmin": 0, "vmax": 1} if pixels.ndim == 2 else {}
    panels = 4 if original is not None else 3
    fig = Figure(figsize=(3.2 * panels, 3.4))
    axes = list(fig.subplots(1, panels))
    if original is not None:
        original_ax = axes.pop(0)
        original_ax.imshow(original)
        original_ax.set_title(f"original {original.height}x{original.width}", fontsize=9)
    input_ax, map_ax, overlay_ax = axes
    input_ax.imshow(pixels, **grey)
    input_ax.set_title(f"input {size[0]}x{size[1]}", fontsize=9)
    map_h, map_w = reading.best.shape
    map_ax.set_facecolor("white")
    _draw_cells(map_ax, reading, charset, (map_h, map_w))
    map_ax.set_xlim(0, map_w)
    map_ax.set_ylim(map_h, 0)
    map_ax.set_xticks(np.arange(map_w + 1))
    map_ax.set_yticks(np.arange(map_h + 1))
    map_ax.tick_params(labelbottom=False, labelleft=False, length=0)
    map_ax.grid(True, color="0.85", linewidth=0.5)
    map_ax.set_aspect(size[0] / map_h / (size[1] / map_w))
    map_ax.set_title(f"{map_h}x{map_w} argmax map", fontsize=9)
    overlay_ax.imshow(pixels, **grey)
    _draw_cells(overlay_ax, reading, charset, size)
    overlay_ax.set_title("map over input", fontsize=9)
    text = reading.text if len(reading.text) <= 40 else reading.text[:39] + "…"
    fig.suptitle(f"read: {text!r}", fontsize=10)
    for ax in fig.axes:
        if ax is not map_ax:
            ax.axis("off")
    colours = ScalarMappable(Normalize(0.0, 1.0), CMAP)
    fig.colorbar(colours, ax=map_ax, fraction=0.046, label="confidence")
    fig.tight_layout()
    return fig


def map_figure(
    model: nn.Module,
    charset: Charset,
    image: Image.Image,
    transform: Callable[[Image.Image], Tensor],
) -> Figure:
    """The four-panel figure for a raw PIL image, normalised by ``transform``."""
    return input_map_figure(model, charset, transform(image), original=image)


def save_map_picture(
    model: nn.Module,
    charset: Charset,
    image: Image.Image,
    transform: Callable[[Image.Image], Tensor],
    path: str | Path,
) -> Path:
    """Write the Fig. 5-style picture of ``image`` to ``path`` (PNG); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    map_figure(model, charset, image, transform).savefig(path, dpi=120)
    return path
