"""The character counter of Sec. 4.1.2, used to normalise 2D inputs by character count.

The counter is an ordinary Recognizer whose head is a `CountHead` (trained by
``experiment=char_counter_quick``); here it is rebuilt from its checkpoint alone and applied to
one PIL image through the input transform it was trained with.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from ace_str.models.heads.count import CountHead

log = logging.getLogger(__name__)


class CharCounter:
    """``counter(image) -> int``: the predicted number of characters of a text image."""

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu") -> None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"counter checkpoint not found: {path}")
        state = torch.load(path, map_location=device, weights_only=True)
        cfg = OmegaConf.create(state["config"])
        charset = instantiate(cfg.charset)
        model = instantiate(cfg.model, head=instantiate(cfg.head), num_classes=charset.num_classes)
        if not isinstance(model.head, CountHead):
            raise ValueError(f"{path}: not a counter (its head is {type(model.head).__name__})")
        model.load_state_dict(state["model"])
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        # The counter reads the plain fitted canvas it was trained on.
        self.transform = instantiate(cfg.data.transform)
        if getattr(self.transform, "counter_checkpoint", None) is not None:
            raise ValueError(f"{path}: a counter's own input transform cannot use a counter")
        log.info("character counter loaded from %s", path)

    @torch.inference_mode()
    def __call__(self, image: Image.Image) -> int:
        logits = self.model(self.transform(image)[None].to(self.device))
        counts, _ = self.model.head.counts(logits)
        return int(counts[0])
