"""The handwritten Chinese text-line network of the paper's Sec. 4.2.1.

(126, 576) input - 8C3 - MP2 - 32C3 - MP2 - 128C3 - MP2 - 5x256C3 - MP2 - 512C3 - 512C3 - MP2 -
512C2 - 3x512 ResLSTM, a prediction sequence of about 70 frames.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

# conv widths per stage, and the pool after each stage: the first three pools halve both sides,
# the last two the height only, so a 576-wide line keeps 576 / 8 - 1 = 71 frames (the paper's
# "about 70"); halving the width five times would leave 18, too few for a 20+ character line.
_STAGES = (1, 1, 1, 5, 2)
_POOLS = ((2, 2), (2, 2), (2, 2), (2, 1), (2, 1))


def _conv(in_ch: int, out_ch: int, kernel: int, padding: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, 1, padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.ReLU(inplace=True))
    return layers


class ResLSTM(nn.Module):
    """An LSTM layer whose output is added to its input (residual LSTM, Kim et al. 2017, the
    paper's [49]), so three stacked layers train as easily as one.

    ``bidirectional``: a BiLSTM of ``size // 2`` units per direction, whose concatenated output
    already has the input's width, so no projection is needed and the whole line is context for
    every frame; otherwise a forward LSTM of ``size`` units, as in [49].
    """

    def __init__(self, size: int, bidirectional: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if bidirectional and size % 2:
            raise ValueError(f"a bidirectional ResLSTM needs an even width, not {size}")
        hidden = size // 2 if bidirectional else size
        self.lstm = nn.LSTM(size, hidden, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        return x + self.dropout(out)


class HCTRBackbone(nn.Module):
    """Grey line image (B, 1, 126, W) -> features (B, W // 8 - 1, D).

    ``channels`` are the eleven convolution widths (8, 32, 128, 5x256, 512, 512, and the final 2x2
    one); D is the last. After the 2x2 convolution the height left (2 for a 126-high input) is
    averaged away. Any width divisible by 8 works, so tests use narrow lines and tiny widths.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 32, 128, 256, 256, 256, 256, 256, 512, 512, 512),
        lstm_layers: int = 3,
        bidirectional: bool = True,
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(channels) != sum(_STAGES) + 1:
            raise ValueError(f"HCTR has {sum(_STAGES) + 1} convolutions, not {len(channels)}")
        layers: list[nn.Module] = []
        widths = iter(channels)
        in_ch = in_channels
        for convs, pool in zip(_STAGES, _POOLS, strict=True):
            for _ in range(convs):
                out_ch = next(widths)
                layers += _conv(in_ch, out_ch, 3, 1, batch_norm)
                in_ch = out_ch
            layers.append(nn.MaxPool2d(pool, pool))
        out_ch = next(widths)
        layers += _conv(in_ch, out_ch, 2, 0, batch_norm)
        self.cnn = nn.Sequential(*layers)
        self.rnn = nn.Sequential(
            *(ResLSTM(out_ch, bidirectional, dropout) for _ in range(lstm_layers))
        )
        self.out_features = out_ch
        self.stride = 8

    def frames(self, width: int) -> int:
        """Frames for an input width: three width-halving pools, then the 2x2 convolution."""
        return width // 2 // 2 // 2 - 1

    def forward(self, images: Tensor) -> Tensor:
        features = self.cnn(images)  # (B, D, H', T)
        features = features.mean(dim=2).transpose(1, 2)  # (B, T, D)
        return self.rnn(features)
