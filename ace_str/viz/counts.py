"""The paper's Fig. 6: an image with each class's ACE probability mass drawn over it.

One panel for the input, then one per class whose predicted count is non-zero (or all classes
with ``every_class``): that class's per-cell probability, upsampled over the image, titled with
its summed mass and the rounded count. Bare matplotlib Figures, so it works headless.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ace_str.models.counting import counts_from_map


@torch.inference_mode()
def count_map_figure(
    model: nn.Module, inputs: Tensor, names: Sequence[str], every_class: bool = False
) -> Figure:
    """``inputs``: one normalised (C, H, W) image in [-1, 1]; ``names``: class k's name (the
    blank excluded); the model must give a 2D (1, h, w, K + 1) map."""
    model.eval()
    logits = model(inputs[None])
    if logits.dim() != 4 or logits.shape[-1] != len(names) + 1:
        raise ValueError(
            f"need a (1, h, w, {len(names) + 1}) map for {len(names)} classes, "
            f"got {tuple(logits.shape)}"
        )
    probs = logits.float().softmax(-1)[0].cpu().numpy()  # (h, w, K + 1)
    counts = counts_from_map(logits)[0, 1:].tolist()
    shown = [k for k in range(len(names)) if every_class or counts[k] > 0]
    pixels = (inputs.detach().float().cpu() * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()
    pixels = pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels
    grey = {"cmap": "gray", "vmin": 0, "vmax": 1} if pixels.ndim == 2 else {}
    height, width = pixels.shape[:2]
    fig = Figure(figsize=(2.6 * (1 + len(shown)), 2.9))
    axes = np.atleast_1d(fig.subplots(1, 1 + len(shown)))
    axes[0].imshow(pixels, **grey)
    total = ", ".join(f"{names[k]} {counts[k]}" for k in shown) or "nothing"
    axes[0].set_title("input", fontsize=8)
    fig.suptitle(f"counted: {total}", fontsize=9)
    for ax, k in zip(axes[1:], shown, strict=True):
        ax.imshow(pixels, **grey)
        mass = probs[..., k + 1]
        ax.imshow(
            mass,
            cmap="magma",
            alpha=0.6,
            vmin=0,
            vmax=1,
            extent=(0, width, height, 0),
            interpolation="bilinear",
        )
        ax.set_title(f"{names[k]}: {mass.sum():.2f} -> {counts[k]}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig
