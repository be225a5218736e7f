"""Image preprocessing: any PIL image in, a normalised ``(C, H, W)`` float tensor out."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import pil_modes_mapping
from torchvision.transforms.v2 import functional as F

INTERPOLATIONS: dict[str, InterpolationMode] = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "lanczos": InterpolationMode.LANCZOS,
}


def _unit_lut() -> np.ndarray:
    """Each 8-bit value as the float32 that torchvision's ``to_dtype(scale=True)`` followed by
    ``normalize(0.5, 0.5)`` makes of it, by those very calls: a table lookup gives the same
    tensor for a fraction of the three dispatched tensor ops' cost."""
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 256)
    scaled = F.to_dtype(values, torch.float32, scale=True)
    return F.normalize(scaled, mean=[0.5], std=[0.5]).view(256).numpy().copy()


_UNIT = _unit_lut()

# The PIL filter of each interpolation, as torchvision's ``resize`` maps it for PIL images.
_RESAMPLE = {name: pil_modes_mapping[mode] for name, mode in INTERPOLATIONS.items()}

# Modes whose pixels are wider than 8 bits; Pillow's own convert("L") clips them to 255.
_WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def to_8bit(image: Image.Image, channels: int = 1) -> Image.Image:
    """Convert any PIL mode to 8-bit 'L' (channels=1) or 'RGB' (channels=3).

    Transparency is composited on white (word crops are mostly dark text on light paper, and an
    RGBA crop's transparent area is background). 16/32-bit and float pixels are rescaled to
    8 bits instead of being clipped, which would turn most 16-bit scans white.
    """
    if image.mode in _WIDE_MODES:
        image = _rescale_wide(image)
    elif image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        # CMYK, YCbCr, LAB, HSV, P and 1 all go through RGB so their colours are honoured.
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image = image.convert(target)
    return image


def _rescale_wide(image: Image.Image) -> Image.Image:
    """Map 16-bit, 32-bit int or float pixels onto 0..255."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        scale = 65535.0
    elif image.mode == "F" and array.size and 0.0 <= array.min() and array.max() <= 1.0:
        scale = 1.0
    elif array.size and array.max() > 255:
        # 'I' is how Pillow opens many 16-bit PNGs; assume 16-bit data unless it exceeds that.
        scale = 65535.0 if array.max() <= 65535 else float(array.max())
    else:
        scale = 255.0
    array = np.clip(array * (255.0 / scale), 0, 255)
    return Image.fromarray(np.rint(array).astype(np.uint8), mode="L")


class ResizeNormalize:
    """Resize a word crop to a fixed size and normalise it to [-1, 1].

    With ``keep_ratio`` the crop is resized to ``height`` keeping its aspect ratio (width capped
    at ``width``) and padded on the right with 0, the normalised mid-grey. Zero is used rather
    than black or white because it is neutral for both text polarities and contributes nothing
    to a first convolution but its bias; replicating the last column instead would smear any
    stroke touching the right border into a bar that reads like 'l' or '1'.

    ``max_stretch`` (with ``keep_ratio``) widens a narrow crop by up to that factor before
    padding: a short word then fills more of the canvas without its letters growing wider than
    a frame's view, and a crop of at least ``width / max_stretch`` fills it exactly as without
    ``keep_ratio``.
    """

    def __init__(
        self,
        height: int = 32,
        width: int = 100,
        channels: int = 1,
        keep_ratio: bool = False,
        interpolation: str = "bilinear",
        max_stretch: float = 1.0,
    ) -> None:
        if height <= 0 or width <= 0:
            raise ValueError(f"height and width must be positive, got {height}x{width}")
        if not max_stretch >= 1.0:
            raise ValueError(f"max_stretch must be at least 1 (no stretch), got {max_stretch}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {interpolation!r}; choose from {sorted(INTERPOLATIONS)}"
            )
        self.height = height
        self.width = width
        self.channels = channels
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation
        self.max_stretch = float(max_stretch)

    def __repr__(self) -> str:
        return (
            f"ResizeNormalize(height={self.height}, width={self.width}, channels={self.channels}, "
            f"keep_ratio={self.keep_ratio}, interpolation={self.interpolation!r}, "
            f"max_stretch={self.max_stretch})"
        )

    def resized_width(self, image_width: int, image_height: int) -> int:
        """Width of the image content before padding (the full width without keep_ratio)."""
        if not self.keep_ratio:
            return self.width
        scaled = round(image_width * self.height * self.max_stretch / max(1, image_height))
        return max(1, min(self.width, scaled))

    def resize_to_tensor(self, image: Image.Image, height: int, width: int) -> torch.Tensor:
        """An 8-bit image resized to ``height`` x ``width``, as a (C, H, W) tensor in [-1, 1].

        Resizing the PIL image keeps Pillow's fast antialiased path and no overshoot (the call
        torchvision's ``resize`` makes for a PIL image); the values are those of torchvision's
        ``to_dtype(scale=True)`` and ``normalize(0.5, 0.5)``, read from a table.
        """
        if image.size != (width, height):
            image = image.resize((width, height), _RESAMPLE[self.interpolation])
        pixels = np.asarray(image)
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return torch.from_numpy(_UNIT[pixels])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = to_8bit(image, self.channels)
        content_width = self.resized_width(*image.size)
        tensor = self.resize_to_tensor(image, self.height, content_width)
        if content_width < self.width:
            tensor = F.pad(tensor, [0, 0, self.width - content_width, 0], fill=0.0)
        return tensor
