"""CRNN (Shi et al., TPAMI 2016): a 7-convolution VGG-style network and a 2-layer BiLSTM."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

CONTEXTS = ("bilstm", "none", "residual")


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
    converges faster on a short CPU budget. ``kernel_widths`` are the widths of the first six
    kernels (3 in CRNN, or 1: the layer mixes only along the height), which sets how wide a
    frame's receptive field is: 50 px in CRNN, 30 px with (3, 3, 3, 3, 1, 1).

    ``context`` says what each frame sees beyond its convolutional receptive field (~50 px):
    ``bilstm`` is CRNN (the whole word); ``none`` drops the BiLSTM (frame-local); ``residual``
    adds the BiLSTM to a projection of the local features through a zero-initialised layer.
    Why: a network that sees the whole word fits ACE's Eq. 8 by predicting the word's average
    counts in every frame, a global minimum that reads nothing, and sits there for ~1,000 steps;
    a frame that sees only its neighbourhood cannot know the word's counts, so it learns the
    letter under it. With the residual the model starts frame-local (the branch adds exactly 0)
    and the context grows in as training finds it useful (docs/REPRODUCING.md, "ACE's plateau").
    ``context_dropout`` (residual only) drops the context branch of a whole sample with that
    probability while training (the kept ones scaled by 1 / (1 - p), as in stochastic depth), so
    the local path must read alone as well (the hypothesis: with Eq. 8 a frame may report a
    letter because the BiLSTM saw it elsewhere in the word, which would transfer badly to real
    crops; measured at 0.3 it read less, docs/REPRODUCING.md, so it is off by default).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 128, 256, 256, 512, 512, 512),
        lstm_hidden: int = 256,
        lstm_layers: int = 2,
        dropout: float = 0.0,
        batch_norm_all: bool = False,
        context: str = "bilstm",
        kernel_widths: Sequence[int] = (3, 3, 3, 3, 3, 3),
        context_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) != 7:
            raise ValueError(f"CRNN has 7 convolutions; got {len(channels)} channel widths")
        if context not in CONTEXTS:
            raise ValueError(f"CRNN context must be one of {CONTEXTS}, not {context!r}")
        if len(kernel_widths) != 6 or any(w not in (1, 3) for w in kernel_widths):
            raise ValueError(f"kernel_widths: six widths of 1 or 3, not {list(kernel_widths)}")
        if not 0.0 <= context_dropout < 1.0:
            raise ValueError(f"context_dropout must be in [0, 1), not {context_dropout}")
        if context_dropout and context != "residual":
            raise ValueError(f"context_dropout needs context=residual, not {context!r}")
        c = list(channels)
        k = [(3, w) for w in kernel_widths]
        pad = [(1, w // 2) for w in kernel_widths]
        self.cnn = nn.Sequential(
            *_conv(in_channels, c[0], k[0], pad[0], batch_norm_all),
            nn.MaxPool2d(2, 2),  # H/2, W/2
            *_conv(c[0], c[1], k[1], pad[1], batch_norm_all),
            nn.MaxPool2d(2, 2),  # H/4, W/4
            *_conv(c[1], c[2], k[2], pad[2], True),
            *_conv(c[2], c[3], k[3], pad[3], batch_norm_all),
            nn.MaxPool2d((2, 2), (2, 1), (0, 1)),  # H/8, W/4 + 1
            *_conv(c[3], c[4], k[4], pad[4], True),
            *_conv(c[4], c[5], k[5], pad[5], batch_norm_all),
            nn.MaxPool2d((2, 1), (2, 1)),  # H/16, W/4 + 1
            *_conv(c[5], c[6], 2, 0, True),  # H/16 - 1, W/4
        )
        self.context = context
        self.context_dropout = context_dropout
        self.out_features = c[6] if context == "none" else 2 * lstm_hidden
        self.stride = 4
        if context == "none":
            return
        self.rnn = nn.LSTM(
            c[6],
            lstm_hidden,
            num_layers=lstm_layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if lstm_layers > 1 else 0.0,
        )
        if context == "residual":
            self.local = nn.Linear(c[6], self.out_features)
            self.context_out = nn.Linear(self.out_features, self.out_features)
            nn.init.zeros_(self.context_out.weight)
            nn.init.zeros_(self.context_out.bias)

    def frames(self, width: int) -> int:
        """Frames for an input width, so a loss can leave out padded frames."""
        return width // self.stride

    def forward(self, images: Tensor) -> Tensor:
        features = self.cnn(images)  # (B, D, H', T)
        features = features.mean(dim=2).transpose(1, 2)  # (B, T, D)
        if self.context == "none":
            return features
        if self.context == "bilstm":
            return self.rnn(features)[0]
        context = self.context_out(self.rnn(features)[0])
        if self.training and self.context_dropout:
            keep = 1.0 - self.context_dropout
            mask = features.new_empty(features.shape[0], 1, 1).bernoulli_(keep)
            context = context * mask / keep
        return self.local(features) + context
