"""Context across the cells of a 2D map: the 2D form of the CRNN's residual BiLSTM.

A small FCN's cell sees its neighbourhood only; to commit one letter per cell, neighbouring cells
must settle which of them reports a letter their fields share, which the 1D model does through
its BiLSTM. Here torch's Transformer encoder layers run over the H x W cells (learned row and
column embeddings for where a cell is), and every branch that adds to the features starts at
zero, so the map begins exactly as the convolutions give it (local, off ACE's plateau) and the
context grows in as training finds it useful (docs/REPRODUCING.md, Table 2). `RowContext` is
the narrower form: the BiLSTM itself, along each row of the map, in the text's direction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MapContext(nn.Module):
    """Features (B, H, W, D) -> (B, H, W, D); the identity at initialisation.

    ``max_size`` bounds H and W (the learned row and column embeddings); 96x100 gives 12x13,
    32x100 crops 4x13.
    """

    def __init__(
        self,
        features: int,
        layers: int = 1,
        heads: int = 4,
        ffn_ratio: float = 2.0,
        max_size: int = 64,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"MapContext needs at least one layer, got {layers}")
        if features % heads:
            raise ValueError(f"{features} features do not split into {heads} heads")
        self.max_size = max_size
        self.rows = nn.Parameter(torch.zeros(max_size, features))
        self.cols = nn.Parameter(torch.zeros(max_size, features))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                features,
                heads,
                dim_feedforward=max(1, round(features * ffn_ratio)),
                dropout=0.0,
                batch_first=True,
                norm_first=True,
            )
            for _ in range(layers)
        )
        for layer in self.layers:  # each residual branch adds exactly 0 at the start
            for linear in (layer.self_attn.out_proj, layer.linear2):
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)

    def forward(self, features: Tensor) -> Tensor:
        b, h, w, d = features.shape
        if h > self.max_size or w > self.max_size:
            raise ValueError(
                f"a {h}x{w} map exceeds MapContext's max_size {self.max_size}; raise it"
            )
        position = self.rows[:h, None, :] + self.cols[None, :w, :]  # (H, W, D)
        x = (features + position).reshape(b, h * w, d)
        for layer in self.layers:
            x = layer(x)
        return x.reshape(b, h, w, d)


class RowContext(nn.Module):
    """Features (B, H, W, D) -> (B, H, W, D): a residual BiLSTM along each row of the map.

    The CRNN's residual BiLSTM, run over the W cells of every row: text that runs along the
    rows (within the renderer's +-25 degrees) gets the 1D model's context along the word, where
    the global Transformer of `MapContext` read no more (REPRODUCING.md, Table 2). The output
    projection starts at zero, so the map begins as the convolutions give it.
    """

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"RowContext needs a positive hidden size, got {hidden}")
        self.rnn = nn.LSTM(features, hidden, bidirectional=True, batch_first=True)
        self.out = nn.Linear(2 * hidden, features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: Tensor) -> Tensor:
        b, h, w, d = features.shape
        rows = features.reshape(b * h, w, d)
        context = self.out(self.rnn(rows)[0])
        return features + context.reshape(b, h, w, d)
