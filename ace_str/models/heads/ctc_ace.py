"""CTC and ACE on the same per-frame scores: CTC's order plus ACE's counting signal."""

from __future__ import annotations

from torch import Tensor

from ace_str.losses.ace import ACELoss, Backend
from ace_str.models.heads.ace import skip_count
from ace_str.models.heads.ctc import CTCHead, ctc_loss


class CTCACEHead(CTCHead):
    """Loss = CTC + ``ace_weight`` * ACE on one classifier's logits; decoded as CTC (the blank
    between repeats is what CTC learns to emit, so counting-style decoding would misread)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        ace_weight: float = 1.0,
        ace_mode: str = "cross_entropy",
        on_too_long: str = "error",
        decoder: str = "greedy",
        beam_width: int = 5,
        normalize_by_length: bool = True,
        ace_backend: Backend = "auto",
    ) -> None:
        super().__init__(in_features, num_classes, decoder, beam_width, normalize_by_length)
        self.ace = ACELoss(mode=ace_mode, on_too_long=on_too_long, backend=ace_backend)
        self.ace_weight = ace_weight

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        ctc = ctc_loss(logits, targets, target_lengths, self.normalize_by_length)
        ace = self.ace.terms(logits, targets, target_lengths)
        return {
            "loss": ctc + self.ace_weight * ace.loss,
            "ctc": ctc.detach(),
            "ace": ace.loss.detach(),
            "ace_kl": ace.kl,
            **skip_count(self.ace, ace),
        }
