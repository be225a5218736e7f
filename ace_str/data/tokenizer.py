"""Attention decoder tokens over a charset's class indices.

Class 0 is [EOS] (and padding), classes 1..n are the charset's symbols in the charset's own index
space, so a decoded sequence needs no remapping, and n + 1 is [GO], an input that is never
predicted. Targets from ``Charset.encode_batch`` (blank-padded) map to decoder steps directly.
"""

from __future__ import annotations

import torch
from torch import Tensor

EOS = 0
IGNORE = -100  # cross-entropy's ignore_index: steps after [EOS] carry no loss


class AttentionTokenizer:
    """Decoder inputs and outputs for teacher forcing, and the cut at [EOS] when reading."""

    def __init__(self, num_symbols: int) -> None:
        if num_symbols < 1:
            raise ValueError(f"an attention tokenizer needs at least one symbol, not {num_symbols}")
        self.num_symbols = num_symbols
        self.eos = EOS
        self.go = num_symbols + 1

    @property
    def num_outputs(self) -> int:
        """Predicted classes: [EOS] and the symbols."""
        return self.num_symbols + 1

    @property
    def num_inputs(self) -> int:
        """Fed-back tokens: [EOS], the symbols and [GO]."""
        return self.num_symbols + 2

    def inputs(self, targets: Tensor) -> Tensor:
        """(B, L) blank-padded targets -> teacher-forcing inputs [GO] s_1..s_L (B, L + 1); the
        padding reads as [EOS], whose steps carry no loss."""
        go = targets.new_full((targets.shape[0], 1), self.go)
        return torch.cat([go, targets.long()], dim=1)

    def outputs(self, targets: Tensor, target_lengths: Tensor) -> Tensor:
        """(B, L) targets -> what each step must predict, s_1..s_len [EOS] (B, L + 1), and IGNORE
        after a sample's [EOS]."""
        batch, width = targets.shape
        if width and int(targets.max()) > self.num_symbols:
            raise ValueError(f"targets hold a class above the charset's {self.num_symbols}")
        lengths = target_lengths.to(targets.device).long().unsqueeze(1)
        steps = torch.arange(width + 1, device=targets.device).unsqueeze(0)
        padded = torch.cat([targets.long(), targets.new_zeros(batch, 1).long()], dim=1)
        outputs = torch.where(steps < lengths, padded, torch.full_like(padded, EOS))
        return outputs.masked_fill(steps > lengths, IGNORE)

    def strip(self, indices: list[int], max_length: int | None = None) -> list[int]:
        """Symbols before the first [EOS], at most ``max_length`` of them."""
        cut = indices.index(EOS) if EOS in indices else len(indices)
        if max_length is not None:
            cut = min(cut, max_length)
        return indices[:cut]
