"""TensorBoard writing kept out of the training loop's way."""

from __future__ import annotations

import matplotlib.pyplot as plt
from torch.utils.tensorboard import SummaryWriter

from ace_str.viz.grid import captioned_grid  # re-exported: it lived here first

__all__ = ["add_grid", "captioned_grid"]


def add_grid(writer: SummaryWriter, tag: str, images, captions, step: int) -> None:
    fig = captioned_grid(images, captions)
    writer.add_figure(tag, fig, step)
    plt.close(fig)
