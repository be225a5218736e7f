"""An augmentation policy for real training crops (``data.augment``): the renderer varies its
own words, but LMDB and labelled-folder crops would otherwise be seen as stored. Training sources
only; validation and evaluation data are never wrapped.

Each sample's augmentation is a function of (seed, index) alone, as the renderer's samples are:
torchvision's random transforms draw from the global torch generator, so the policy runs inside
``torch.random.fork_rng`` seeded from the pair, and leaves the training's random stream as it
found it (a resumed run stays bit-exact with DataLoader workers or without).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ace_str.data.collate import Skip, unusable
from ace_str.data.drops import dropped_at_index
from ace_str.data.transforms import to_8bit

log = logging.getLogger(__name__)


class AugmentPolicy:
    """torchvision v2 transforms applied to a PIL crop, returning a PIL crop.

    ``pixels`` run on the 8-bit image (geometry, blur, contrast, JPEG: ``v2.RandomAffine``,
    ``v2.RandomPerspective``, ``v2.GaussianBlur``, ``v2.JPEG``, wrapped in ``v2.RandomApply``
    for a probability); ``floats`` then run on it scaled to [0, 1] (``v2.GaussianNoise``, which
    takes floats only). Grey crops stay grey, others become RGB.
    """

    def __init__(self, pixels: Sequence[Callable], floats: Sequence[Callable] = ()) -> None:
        self.pixels = v2.Compose(list(pixels))
        self.floats = v2.Compose(list(floats))

    def __repr__(self) -> str:
        return f"AugmentPolicy(pixels={self.pixels}, floats={self.floats})"

    def __call__(self, image: Image.Image, seed: int) -> Image.Image:
        """``image`` augmented with the random draws of ``seed`` (the global RNG untouched)."""
        image = to_8bit(image, 1 if image.mode in ("1", "L", "I", "F") else 3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tensor = self.pixels(F.to_image(image))
            if self.floats.transforms:
                tensor = self.floats(F.to_dtype(tensor, torch.float32, scale=True))
                tensor = F.to_dtype(tensor.clamp(0, 1), torch.uint8, scale=True)
        return F.to_pil_image(tensor.as_subclass(torch.Tensor))


def sample_seed(seed: int, index: int) -> int:
    """The augmentation seed of sample ``index``: a function of (seed, index) only (hashed as
    the renderer's ``sample_rng`` is, so nearby pairs do not collide)."""
    return random.Random(f"ace_str.augment:{seed}:{index}").getrandbits(63)


class AugmentedDataset(Dataset):
    """Wraps a dataset of ``(PIL image, label)`` samples (None for unusable ones, passed on):
    sample ``index`` is augmented by ``policy`` with ``sample_seed(seed, index)``, then goes
    through ``transform`` (resize, normalise). A crop the policy or transform cannot handle is
    skipped (None) and recorded for the trainer, as the LMDB reader does with its transform."""

    def __init__(
        self,
        dataset: Dataset,
        policy: AugmentPolicy,
        transform: Callable[[Image.Image], Any] | None,
        seed: int,
    ) -> None:
        self.dataset = dataset
        self.policy = policy
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def drop_stats(self) -> Counter:
        """The wrapped crops' drops at indexing (augmentation drops nothing there)."""
        return dropped_at_index(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, str] | Skip | None:
        sample = self.dataset[index]
        if unusable(sample):
            return sample
        image, label = sample
        try:
            image = self.policy(image, sample_seed(self.seed, index))
            return (self.transform(image) if self.transform else image), label
        except Exception as err:  # a crop the policy cannot warp (e.g. 1 px wide)
            log.warning("augmentation of training sample %d failed, skipped: %s", index, err)
            return Skip("augment", str(index), "augment_error")
