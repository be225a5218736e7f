import numpy as np
import pytest
import torch
from PIL import Image

from ace_str.data.transforms import ResizeNormalize, to_8bit


def _gradient(mode: str, size: tuple[int, int] = (40, 10)) -> Image.Image:
    return Image.linear_gradient("L").resize(size).convert(mode)


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGB", "RGBA", "LA", "CMYK", "I", "F", "I;16"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_gives_shape_and_range(mode: str, channels: int) -> None:
    out = ResizeNormalize(32, 100, channels=channels)(_gradient(mode))
    assert type(out) is torch.Tensor and out.dtype == torch.float32
    assert out.shape == (channels, 32, 100)
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "1"])
def test_one_pixel_image(mode: str) -> None:
    assert ResizeNormalize(32, 100)(Image.new(mode, (1, 1))).shape == (1, 32, 100)
    assert ResizeNormalize(32, 100, keep_ratio=True)(Image.new(mode, (1, 1))).shape == (1, 32, 100)


def test_16bit_is_scaled_not_clipped() -> None:
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    for image in (Image.fromarray(values), Image.fromarray(values.astype(np.int32))):
        assert np.asarray(to_8bit(image)).tolist() == [[0, 64, 128, 255]]
    out = ResizeNormalize(1, 4, interpolation="nearest")(Image.fromarray(values))
    torch.testing.assert_close(
        out[0, 0], torch.tensor([-1.0, -0.498, 0.0039, 1.0]), atol=2e-3, rtol=0
    )


def test_rgba_is_composited_on_white() -> None:
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 0, 255))
    out = ResizeNormalize(4, 4, interpolation="nearest")(image)
    assert out[0, 0, 0] == -1 and out[0, 3, 3] == 1


def test_keep_ratio_pads_right_with_zero() -> None:
    transform = ResizeNormalize(32, 100, keep_ratio=True)
    image = Image.new("L", (40, 20), 255)  # 2:1 -> 64 x 32
    assert transform.resized_width(*image.size) == 64
    out = transform(image)
    assert out.shape == (1, 32, 100)
    assert torch.all(out[..., :64] == 1) and torch.all(out[..., 64:] == 0)
    wide = transform(Image.new("L", (1000, 20), 255))
    assert torch.all(wide == 1)  # width capped at 100, nothing to pad


def test_max_stretch_widens_narrow_crops_up_to_the_factor_then_pads() -> None:
    """A 2:1 crop (64 px at 32 high) widened 1.5x to 96 px and padded; a 4:1 crop (128 px)
    fills the canvas as without keep_ratio; factor 1 is plain keep_ratio."""
    transform = ResizeNormalize(32, 100, keep_ratio=True, max_stretch=1.5)
    assert transform.resized_width(40, 20) == 96
    assert transform.resized_width(80, 20) == 100
    assert transform.resized_width(10, 20) == 24
    out = transform(Image.new("L", (40, 20), 255))
    assert torch.all(out[..., :96] == 1) and torch.all(out[..., 96:] == 0)
    assert ResizeNormalize(32, 100, keep_ratio=True, max_stretch=1.0).resized_width(40, 20) == 64
    assert ResizeNormalize(32, 100, max_stretch=1.5).resized_width(40, 20) == 100


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_stretch"):
        ResizeNormalize(keep_ratio=True, max_stretch=0.5)
    with pytest.raises(ValueError):
        ResizeNormalize(0, 100)
    with pytest.raises(ValueError):
        ResizeNormalize(channels=2)
    with pytest.raises(ValueError):
        ResizeNormalize(interpolation="cubicle")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic", "lanczos"])
def test_matches_torchvision_pipeline(channels: int, interpolation: str) -> None:
    """The table lookup gives bit for bit the tensor of torchvision's resize, to_dtype and
    normalize, for every 8-bit value."""
    from torchvision.transforms.v2 import functional as F

    from ace_str.data.transforms import INTERPOLATIONS

    rng = np.random.default_rng(0)
    pixels = np.concatenate([np.arange(256), rng.integers(0, 256, 37 * 53 * 3 - 256)])
    mode = "L" if channels == 1 else "RGB"
    shape = (37, 53 * 3) if channels == 1 else (37, 53, 3)
    image = Image.fromarray(pixels[: np.prod(shape)].reshape(shape).astype(np.uint8), mode)
    transform = ResizeNormalize(32, 100, channels=channels, interpolation=interpolation)
    for size in (image.size, (100, 32)):
        resized = F.resize(
            image, [size[1], size[0]], interpolation=INTERPOLATIONS[interpolation], antialias=True
        )
        expected = F.to_dtype(F.to_image(resized), torch.float32, scale=True)
        expected = F.normalize(expected, mean=[0.5] * channels, std=[0.5] * channels)
        got = transform.resize_to_tensor(image, size[1], size[0])
        assert got.shape == expected.shape and torch.equal(got, expected.as_subclass(torch.Tensor))
