"""ACE head: a per-frame (or per-cell) linear classifier trained with ACE, decoded by counting."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ace_str.losses.ace import ACELoss, flatten_prediction
from ace_str.models.decoding import ace_count_decode, ace_greedy_decode, ace_peak_decode
from ace_str.models.heads.base import Head

# greedy: argmax per frame, blanks dropped, repeats kept; count: the same, with adjacent repeats
# dropped where they exceed ACE's own count of the class (decoding.ace_count_decode); peaks:
# each class as often as its summed probability says, at its strongest cells (ace_peak_decode)
DECODERS = {"greedy": ace_greedy_decode, "count": ace_count_decode, "peaks": ace_peak_decode}


class ACEHead(Head):
    """Works on (B, T, D) and (B, H, W, D) features alike; a 1x1 classifier over the 2D map."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        mode: str = "cross_entropy",
        on_too_long: str = "error",
        read_order: str = "column",
        decoder: str = "greedy",
        entropy_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if entropy_weight < 0:
            raise ValueError(f"entropy_weight must be at least 0, not {entropy_weight}")
        self.classifier = nn.Linear(in_features, num_classes)
        self.criterion = ACELoss(mode=mode, on_too_long=on_too_long)
        self.read_order = read_order
        self.entropy_weight = entropy_weight
        self.use_decoder(decoder)

    def forward(self, features: Tensor, targets: Tensor | None = None) -> Tensor:
        return self.classifier(features)

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        terms = self.criterion.terms(logits, targets, target_lengths)
        out = {"loss": terms.loss, "ace_kl": terms.kl}
        if self.entropy_weight > 0:
            entropy = frame_entropy(logits)
            out["loss"] = terms.loss + self.entropy_weight * entropy
            out["frame_entropy"] = entropy.detach()
        return out

    def use_decoder(self, decoder: str) -> None:
        if decoder not in DECODERS:
            raise ValueError(f"ACE decoder must be one of {sorted(DECODERS)}, not {decoder!r}")
        self.decoder = decoder

    def decode(self, logits: Tensor) -> tuple[list[list[int]], Tensor]:
        return DECODERS[self.decoder](logits, self.read_order)


def frame_entropy(logits: Tensor) -> Tensor:
    """Mean over frames (or map cells) of H(y^t), not in the paper.

    Eq. 8 is minimised by any prediction whose sum over frames matches the counts, including
    one that spreads the same bag of characters over every frame, which greedy decoding reads as
    nothing; a small weight on this term favours frames that commit to one class.
    """
    log_probs = F.log_softmax(flatten_prediction(logits).float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1).mean()
