"""ResNet FCN for 2D prediction (Sec. 4.1.2): conv1 3x3 stride 1, conv4_x (``layer3``) as output.

Strides for the paper's 96x100 input: conv1 (3x3, stride 1) keeps 96x100; the 3x3 stride-2
max-pool (padding 1) gives 48x50; layer1 keeps it; layer2 and layer3 each halve it with a
stride-2 3x3 (or 1x1) convolution, floor((n - 1) / 2) + 1: 48x50 -> 24x25 -> 12x13. The total
stride is 8, and the odd 25 rounds up to 13 through the padding, as the paper's (12, 13) map.
layer4 and the classifier are dropped; the ACE head's per-cell Linear is the 1x1 convolution.

The stages come from torchvision (its ``BasicBlock``/``Bottleneck`` and ``_make_layer``), built
here so ``width`` can scale every stage for CPU runs and tests; weights are never downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ace_str.models.backbones.map_context import MapContext, RowContext

# Blocks per stage of torchvision's resnet18/34/50/101/152 (layer4 is dropped).
ARCHITECTURES: dict[int, tuple[type[nn.Module], tuple[int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2)),
    34: (BasicBlock, (3, 4, 6)),
    50: (Bottleneck, (3, 4, 6)),
    101: (Bottleneck, (3, 4, 23)),
    152: (Bottleneck, (3, 8, 36)),
}


class ResNetFCN(ResNet):
    """Image (B, C, H, W) -> features (B, ceil(H/8), ceil(W/8), D); 96x100 -> 12x13
    (ceil(W/4) columns, 12x25, with ``last_stride=(2, 1)``).

    ``width`` multiplies every stage's channels (64, 128, 256 at 1.0), so D is
    ``256 * width * expansion`` (1024 for ResNet-101). ``blocks`` replaces the depth's blocks
    per stage (e.g. [1, 1, 1] with depth 18's BasicBlock) for the shortest CPU runs.
    ``channels`` sets the three stages' widths instead of ``width`` (e.g. [16, 32, 128]: the
    width where the map is 12x13 is cheap, the 96x100 and 48x50 stages are not; on the 2-core CPU
    the budget probe timed a step of 32 at 0.410 s against 0.270 for [16, 32, 64]).
    ``kernel_sizes`` are the stages' kernels: 3 as in ResNet, or 1, where the stage's 3x3
    convolutions become 1x1 (the block keeps its stride and widths) and only mix channels, so
    a cell's receptive field stops growing: 105 px with 3x3 everywhere (depth 18), 49 px with
    (3, 3, 1), 21 px with (3, 1, 1); ``receptive_field`` says it for any setting. Why: a cell that
    sees the whole word can fit Eq. 10 with the word's letter counts in every cell (the 1D
    plateau, docs/REPRODUCING.md, "ACE's plateau", whose 1D remedy is frames that see 30 px);
    measured in 2D, cells of 49 px learned slower, not faster (REPRODUCING.md, Table 2).
    ``max_pool=False`` drops the max-pool for a stride-4 map (24x25 from 96x100).
    ``stem_stride=2`` strides conv1 (a CPU-scale departure from the paper's stride 1); with
    ``max_pool=False`` the map stays 12x13 while nothing runs at 96x100 but conv1 itself: on the
    2-core CPU a canvas step of the quick recipe took 0.169 s against 0.221 (both NHWC; Table 2 of
    docs/REPRODUCING.md).
    ``context_layers`` (0 in the paper) adds Transformer encoder layers over the map's cells
    (``MapContext``, ``context_heads`` heads), the identity at initialisation: the 2D form of
    the 1D recipe's residual BiLSTM, so cells can settle which of them reports a letter.
    ``row_context`` (0: off) is that BiLSTM's hidden size run along each row of the map
    (``RowContext``), zero-initialised too.
    ``last_stride`` is layer3's stride as (rows, columns): the paper's (2, 2), or (2, 1), which
    keeps layer2's columns, a 12x25 map from 96x100 (the CRNN's 25 frames across 100 px, where
    12x13 gives a letter some 8 px of column; a CPU-scale departure from the paper's map).
    Subclassing torchvision's ResNet reuses its ``_make_layer``; its ``__init__`` is skipped
    because it builds layer4 and fc at fixed width.
    """

    def __init__(
        self,
        depth: int = 101,
        in_channels: int = 3,
        width: float = 1.0,
        max_pool: bool = True,
        zero_init_residual: bool = False,
        blocks: Sequence[int] | None = None,
        channels: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] = (3, 3, 3),
        stem_stride: int = 1,
        context_layers: int = 0,
        context_heads: int = 4,
        row_context: int = 0,
        last_stride: Sequence[int] = (2, 2),
    ) -> None:
        if depth not in ARCHITECTURES:
            raise ValueError(f"ResNet depth must be one of {sorted(ARCHITECTURES)}, not {depth}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 (the paper's conv1) or 2, not {stem_stride}")
        nn.Module.__init__(self)
        block, layers = ARCHITECTURES[depth]
        if blocks is not None:
            layers = tuple(blocks)
            if len(layers) != 3 or min(layers) < 1:
                raise ValueError(f"blocks needs three positive counts (layer1-3), got {layers}")
        planes = [max(1, round(64 * width * 2**i)) for i in range(3)]
        if channels is not None:
            planes = [int(c) for c in channels]
            if len(planes) != 3 or min(planes) < 1:
                raise ValueError(f"channels needs three positive widths (layer1-3), got {planes}")
        # Attributes torchvision's _make_layer reads.
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if max_pool else nn.Identity()
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        strides = tuple(int(s) for s in last_stride)
        if len(strides) != 2 or any(s not in (1, 2) for s in strides):
            raise ValueError(f"last_stride: (rows, columns), each 1 or 2, not {strides}")
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=strides)
        kernels = tuple(int(k) for k in kernel_sizes)
        if len(kernels) != 3 or any(k not in (1, 3) for k in kernels):
            raise ValueError(f"kernel_sizes: three kernels of 1 or 3 (layer1-3), not {kernels}")
        for layer, kernel in zip((self.layer1, self.layer2, self.layer3), kernels, strict=True):
            if kernel == 1:
                _pointwise(layer)
        self.out_features = planes[2] * block.expansion
        front = 2 * stem_stride * (2 if max_pool else 1)  # conv1, the max-pool and layer2
        self.strides = (front * strides[0], front * strides[1])  # (rows, columns)
        self.stride = self.strides[0]
        self._init_weights(zero_init_residual)
        if context_layers < 0:
            raise ValueError(f"context_layers must be 0 or more, not {context_layers}")
        self.context = (
            MapContext(self.out_features, context_layers, context_heads) if context_layers else None
        )
        if row_context < 0:
            raise ValueError(f"row_context must be 0 (off) or a hidden size, not {row_context}")
        self.row_context = RowContext(self.out_features, row_context) if row_context else None

    def _init_weights(self, zero_init_residual: bool) -> None:
        """torchvision's ResNet initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def receptive_field(self) -> int:
        """Pixels of input side that one output cell sees, along the blocks' main path (the
        1x1 shortcuts see less)."""
        path: list[nn.Module] = [self.conv1, self.maxpool]
        for layer in (self.layer1, self.layer2, self.layer3):
            for block in layer:
                path += [
                    getattr(block, n) for n in ("conv1", "conv2", "conv3") if hasattr(block, n)
                ]
        field, jump = 1, 1
        for m in path:
            if isinstance(m, nn.Conv2d | nn.MaxPool2d):
                k, s = _first(m.kernel_size), _first(m.stride)
                field += (k - 1) * jump
                jump *= s
        return field

    def map_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) of the output map for an input size, without running the network."""
        for _ in range(self.strides[0].bit_length() - 1):
            height = (height - 1) // 2 + 1
        for _ in range(self.strides[1].bit_length() - 1):
            width = (width - 1) // 2 + 1
        return height, width

    def forward(self, images: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(images)))
        x = self.layer3(self.layer2(self.layer1(self.maxpool(x))))
        x = x.permute(0, 2, 3, 1)  # (B, H, W, D)
        if self.row_context is not None:
            x = self.row_context(x)
        return x if self.context is None else self.context(x)


def _pointwise(layer: nn.Sequential) -> None:
    """Every 3x3 convolution of a stage's blocks becomes a 1x1 with the same stride and widths."""
    for block in layer:
        for name in ("conv1", "conv2"):
            conv = getattr(block, name)
            if conv.kernel_size == (3, 3):
                setattr(
                    block,
                    name,
                    nn.Conv2d(
                        conv.in_channels, conv.out_channels, 1, stride=conv.stride, bias=False
                    ),
                )


def _first(size: int | tuple[int, ...]) -> int:
    return size if isinstance(size, int) else size[0]
