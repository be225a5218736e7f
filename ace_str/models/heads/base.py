"""What the recognizer and the engine need of a head: logits, a loss, a decoding."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from ace_str.models.language_model import CharNGram


class Head(nn.Module):
    """A head owns its loss and its decoding, so nothing else branches on which head is used.

    Decoded sequences are class indices of the charset (1..n); 0 never appears in them.
    ``decoders`` names the decodings ``use_decoder`` accepts (none: the head has one).
    """

    decoders: tuple[str, ...] = ()

    def forward(self, features: Tensor, targets: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        """The scalar to minimise under ``loss``, plus anything worth logging."""
        raise NotImplementedError

    def decode(self, logits: Tensor) -> tuple[list[list[int]], Tensor]:
        """Class index sequences and a (B,) confidence."""
        raise NotImplementedError

    def use_decoder(self, decoder: str) -> None:
        """Switch decoding after training (evaluate.py ``decoder=``); a head with one has none."""
        raise ValueError(f"{type(self).__name__} has one decoding; decoder={decoder!r} is not one")

    def label_capacity(self, logits: Tensor) -> int:
        """The longest label this head can emit: one symbol per frame (or map cell) by default."""
        return logits[0].numel() // logits.shape[-1]

    def use_language_model(
        self, lm: CharNGram | None, weight: float = 0.0, length_bonus: float = 0.0
    ) -> None:
        """Decode with a character language model from now on (evaluate.py ``lm.weight=``);
        ``lm=None`` goes back to the head's own decoding. Heads without one refuse."""
        raise ValueError(f"{type(self).__name__} has no decoding with a language model")
