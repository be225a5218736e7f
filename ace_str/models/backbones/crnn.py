"""CRNN (Shi et al., TPAMI 2016): a 7-convolution VGG-style network and a 2-layer BiLSTM."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def _conv(in_ch: int, out_ch: int, kernel, padding, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, 1, padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.ReLU(inplace=True))
    return layers


class CRNNBackbone(nn.Module):
    """Image (B, C, 32, W) -> features (B, W/4, D), D = 2 * lstm_hidden.

    The pooling follows CRNN: two 2x2 pools, then two that halve the height only, so each frame
    covers 4 px of width; the last 2x2 convolution brings the height to 1. Other heights are
    averaged to 1. ``channels`` are the seven convolution widths, so tests build tiny ones.
    CRNN normalises convolutions 3, 5 and 7; ``batch_norm_all`` normalises all seven, which
    converges faster on a short CPU budget.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 128, 256, 256, 512, 512, 512),
        lstm_hidden: int = 256,
        lstm_layers: int = 2,
        dropout: float = 0.0,
        batch_norm_all: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != 7:
            raise ValueError(f"CRNN has 7 convolutions; got {len(channels)} channel widths")
        c = list(channels)
        self.cnn = nn.Sequential(
            *_conv(in_channels, c[0], 3, 1, batch_norm_all),
            nn.MaxPool2d(2, 2),  # H/2, W/2
            *_conv(c[0], c[1], 3, 1, batch_norm_all),
            nn.MaxPool2d(2, 2),  # H/4, W/4
            *_conv(c[1], c[2], 3, 1, True),
            *_conv(c[2], c[3], 3, 1, batch_norm_all),
            nn.MaxPool2d((2, 2), (2, 1), (0, 1)),  # H/8, W/4 + 1
            *_conv(c[3], c[4], 3, 1, True),
            *_conv(c[4], c[5], 3, 1, batch_norm_all),
            nn.MaxPool2d((2, 1), (2, 1)),  # H/16, W/4 + 1
            *_conv(c[5], c[6], 2, 0, True),  # H/16 - 1, W/4
        )
        self.rnn = nn.LSTM(
            c[6],
            lstm_hidden,
            num_layers=lstm_layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if lstm_layers > 1 else 0.0,
        )
        self.out_features = 2 * lstm_hidden
        self.stride = 4

    def frames(self, width: int) -> int:
        """Frames for an input width, so a loss can leave out padded frames."""
        return width // self.stride

    def forward(self, images: Tensor) -> Tensor:
        features = self.cnn(images)  # (B, D, H', T)
        features = features.mean(dim=2).transpose(1, 2)  # (B, T, D)
        features, _ = self.rnn(features)
        return features
