"""CTC head (Graves et al., 2006): a per-frame linear classifier trained with CTC."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ace_str.models.decoding import BLANK, ctc_greedy_decode, ctc_prefix_beam_search
from ace_str.models.heads.base import Head

if TYPE_CHECKING:
    from ace_str.models.language_model import CharNGram

DECODERS = ("greedy", "beam")


def ctc_loss(
    logits: Tensor, targets: Tensor, target_lengths: Tensor, normalize_by_length: bool = True
) -> Tensor:
    """Batch-mean CTC on (B, T, C) raw scores, in float32 even under autocast.

    ``normalize_by_length`` divides each sample's negative log-likelihood by its label length
    before the batch mean (``F.ctc_loss``'s 'mean', which clovaai's benchmark uses); without it
    the batch mean of the plain per-sample loss. Impossible alignments (label longer than the
    frames allow) give 0 instead of inf (``zero_infinity``).
    """
    if logits.dim() != 3:
        raise ValueError(f"CTC expects logits (B, T, C), got {tuple(logits.shape)}")
    batch, frames, _ = logits.shape
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
        input_lengths = torch.full((batch,), frames, dtype=torch.long, device=logits.device)
        per_sample = F.ctc_loss(
            log_probs,
            targets.long().to(logits.device),
            input_lengths,
            target_lengths.long().to(logits.device),
            blank=BLANK,
            reduction="none",
            zero_infinity=True,
        )
        if normalize_by_length:
            per_sample = per_sample / target_lengths.to(per_sample).clamp_min(1)
    return per_sample.mean()


class CTCHead(Head):
    """Per-frame classifier over (B, T, D) features; decoding is best path or prefix beam search
    (``decoder``), picked by config."""

    decoders = DECODERS

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        decoder: str = "greedy",
        beam_width: int = 5,
        normalize_by_length: bool = True,
    ) -> None:
        super().__init__()
        self.use_decoder(decoder)
        if beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, not {beam_width}")
        self.classifier = nn.Linear(in_features, num_classes)
        self.beam_width = beam_width
        self.normalize_by_length = normalize_by_length
        self.language: tuple[CharNGram, float, float] | None = None

    def forward(self, features: Tensor, targets: Tensor | None = None) -> Tensor:
        return self.classifier(features)

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        loss = ctc_loss(logits, targets, target_lengths, self.normalize_by_length)
        return {"loss": loss, "ctc": loss.detach()}

    def use_decoder(self, decoder: str) -> None:
        if decoder not in DECODERS:
            raise ValueError(f"CTC decoder must be one of {DECODERS}, not {decoder!r}")
        self.decoder = decoder

    def use_language_model(
        self, lm: CharNGram | None, weight: float = 0.0, length_bonus: float = 0.0
    ) -> None:
        """Prefix beam search (``beam_width``) with the language model fused into every
        extension, whatever ``decoder`` says; ``lm=None`` goes back to ``decoder``."""
        self.language = None if lm is None else (lm, weight, length_bonus)

    def decode(self, logits: Tensor) -> tuple[list[list[int]], Tensor]:
        if self.language is not None:
            lm, weight, bonus = self.language
            sequences, confidence = ctc_prefix_beam_search(
                logits, self.beam_width, lm, weight, bonus
            )
            return sequences, confidence.to(logits.device)
        if self.decoder == "beam":
            sequences, confidence = ctc_prefix_beam_search(logits, self.beam_width)
            return sequences, confidence.to(logits.device)
        return ctc_greedy_decode(logits)
