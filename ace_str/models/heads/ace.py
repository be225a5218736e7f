"""ACE head: a per-frame (or per-cell) linear classifier trained with ACE, decoded by counting."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ace_str.losses.ace import ACELoss, ACETerms, Backend, character_counts, flatten_prediction
from ace_str.models.decoding import (
    ace_apportion_decode,
    ace_count_decode,
    ace_greedy_decode,
    ace_mass_decode,
    ace_peak_decode,
    ace_segment_decode,
)
from ace_str.models.heads.base import Head
from ace_str.models.lm_decoding import ace_frame_beam_search, ace_lm_decode

if TYPE_CHECKING:
    from ace_str.models.language_model import CharNGram

# greedy: argmax per frame, blanks dropped, repeats kept; count: the same, with adjacent repeats
# dropped where they exceed ACE's own count of the class (decoding.ace_count_decode); peaks:
# each class as often as its summed probability says, at its strongest cells (ace_peak_decode);
# mass: as often, each at the middle of its share of the mass in reading order (ace_mass_decode);
# segment: as many letters as the total letter mass, each named by the class with the most mass
# in its unit of the running letter mass (ace_segment_decode); apportion: the rounded total letter
# mass shared out by each class's whole part and largest remainders (ace_apportion_decode)
DECODERS = {
    "greedy": ace_greedy_decode,
    "count": ace_count_decode,
    "peaks": ace_peak_decode,
    "mass": ace_mass_decode,
    "segment": ace_segment_decode,
    "apportion": ace_apportion_decode,
}

# decoders that count the letters from sum_k sum_t y^t_k: smoothed counts (head.count_smoothing)
# train every class to a share of about eps * T / C of that sum, read as extra letters
TOTAL_MASS_DECODERS = ("segment", "apportion")


class ACEHead(Head):
    """Works on (B, T, D) and (B, H, W, D) features alike; a 1x1 classifier over the 2D map."""

    decoders = tuple(DECODERS)

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        mode: str = "cross_entropy",
        on_too_long: str = "error",
        read_order: str = "column",
        decoder: str = "greedy",
        entropy_weight: float = 0.0,
        presence_weight: float = 0.0,
        backend: Backend = "auto",
        blank_prior: float | None = None,
        logit_noise: float = 0.0,
        count_smoothing: float = 0.0,
        collapse_height: bool = False,
        letter_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if letter_weight <= 0:
            raise ValueError(f"head.letter_weight must be above 0, e.g. 3.0; got {letter_weight}")
        if not 0.0 <= count_smoothing < 1.0:
            raise ValueError(
                f"head.count_smoothing must be in [0, 1), e.g. 0.05; got {count_smoothing}"
            )
        if logit_noise < 0:
            raise ValueError(f"head.logit_noise must be at least 0, e.g. 1.0; got {logit_noise}")
        if entropy_weight < 0:
            raise ValueError(f"entropy_weight must be at least 0, not {entropy_weight}")
        if presence_weight < 0:
            raise ValueError(f"presence_weight must be at least 0, not {presence_weight}")
        self.classifier = nn.Linear(in_features, num_classes)
        if blank_prior is not None:
            init_blank_prior(self.classifier, blank_prior)
        self.criterion = ACELoss(mode=mode, on_too_long=on_too_long, backend=backend)
        self.read_order = read_order
        self.entropy_weight = entropy_weight
        self.presence_weight = presence_weight
        self.logit_noise = logit_noise
        self.count_smoothing = count_smoothing
        self.collapse_height = collapse_height
        self.letter_weight = letter_weight
        if count_smoothing > 0:  # what compare_decoders.py and the like offer this head
            self.decoders = tuple(d for d in DECODERS if d not in TOTAL_MASS_DECODERS)
        self.use_decoder(decoder)
        self.language: tuple[CharNGram, float, float] | None = None

    def forward(self, features: Tensor, targets: Tensor | None = None) -> Tensor:
        logits = self.classifier(features)
        if self.collapse_height and logits.dim() == 4:
            logits = collapse_columns(logits)
        return logits

    def loss(self, logits: Tensor, targets: Tensor, target_lengths: Tensor) -> dict[str, Tensor]:
        if self.training and self.logit_noise > 0:
            logits = perturb_logits(logits, self.logit_noise)
        terms = self.criterion.terms(logits, targets, target_lengths)
        out = {"loss": terms.loss, "ace_kl": terms.kl, **skip_count(self.criterion, terms)}
        if self.count_smoothing > 0:
            eps = self.count_smoothing
            out["loss"] = (1.0 - eps) * terms.loss + eps * uniform_cross_entropy(logits)
        if self.letter_weight != 1.0:
            letters = letter_cross_entropy(logits, targets, target_lengths)
            out["loss"] = out["loss"] + (self.letter_weight - 1.0) * letters
            out["letter_ce"] = letters.detach()
        if self.entropy_weight > 0:
            entropy = frame_entropy(logits)
            out["loss"] = out["loss"] + self.entropy_weight * entropy
            out["frame_entropy"] = entropy.detach()
        if self.presence_weight > 0:
            presence = presence_loss(logits, targets, target_lengths)
            out["loss"] = out["loss"] + self.presence_weight * presence
            out["presence"] = presence.detach()
        return out

    def use_decoder(self, decoder: str) -> None:
        if decoder not in DECODERS:
            raise ValueError(f"ACE decoder must be one of {sorted(DECODERS)}, not {decoder!r}")
        if decoder not in self.decoders:  # a total-mass decoder on smoothed counts
            raise ValueError(
                f"decoder={decoder} counts letters from the total letter mass, which "
                f"head.count_smoothing={self.count_smoothing} trained to hold about "
                f"eps * T of extra mass spread over every class; use mass, greedy, count or peaks"
            )
        self.decoder = decoder

    def use_language_model(
        self, lm: CharNGram | None, weight: float = 0.0, length_bonus: float = 0.0
    ) -> None:
        """Replaces ``decoder`` by a search with the language model: over the frames' readings
        (ace_frame_beam_search), or, for a head trained with smoothed counts, over near counts
        of each class (ace_lm_decode): smoothing leaves frames that hold a little of every class
        and no blank, which a reading of the frames takes for a letter and the counts ignore."""
        self.language = None if lm is None else (lm, weight, length_bonus)

    def decode(self, logits: Tensor) -> tuple[list[list[int]], Tensor]:
        if self.language is not None:
            lm, weight, bonus = self.language
            search = ace_lm_decode if self.count_smoothing > 0 else ace_frame_beam_search
            return search(logits, lm, weight, bonus, self.read_order)
        return DECODERS[self.decoder](logits, self.read_order)


def init_blank_prior(classifier: nn.Linear, prior: float) -> None:
    """Bias so that a frame with no evidence predicts the blank with probability ``prior`` and
    the other classes alike: Eq. 8's share of blank frames, 1 - |S| / T, from the first step,
    instead of about 1 / C each under torch's default initialisation."""
    if not 0.0 < prior < 1.0:
        raise ValueError(f"head.blank_prior must be in (0, 1), e.g. 0.72; got {prior}")
    others = classifier.out_features - 1
    with torch.no_grad():
        classifier.bias.fill_(math.log((1.0 - prior) / others))
        classifier.bias[0] = math.log(prior)


def collapse_columns(logits: Tensor) -> Tensor:
    """(B, H, W, C) cell logits -> (B, W, C) column logits, their mean over the height; a warm
    start for 2D ACE, not in the paper (head.collapse_height).

    Eq. 10 sees a map only through its mean over all H x W cells, so it cannot tell which of the
    cells a letter covers (its whole height) should hold it, and 2D ACE waits on the plateau for
    that choice. A column is read once: Eq. 8 on the W columns asks each column for its letter,
    and the classifier, shared by every cell, learns the letters; Eq. 10 on the cells (the
    same weights, trainer.init_weights) then has only the height to settle. Measured: the
    columns learn no faster than the cells (docs/REPRODUCING.md, Table 2, sixth try).
    """
    return logits.mean(dim=1)


def perturb_logits(logits: Tensor, std: float) -> Tensor:
    """Logits plus N(0, std^2) noise, drawn anew for every frame and class; not in the paper.

    Eq. 8 is at its minimum for any frames whose probabilities sum to the counts: a letter held
    at 0.5 by two frames scores as well as one frame certain of it. Under noise the first sum
    varies (its frames sit where a softmax is steepest) and the second does not, and -log of an
    average is convex, so Eq. 8 on noisy logits prefers frames that commit, whose sums a shift
    of the input (a real crop after synthetic training) moves least. Eq. 8 stays the only loss.
    """
    return logits + std * torch.randn_like(logits)


def uniform_cross_entropy(logits: Tensor) -> Tensor:
    """-(1/C) sum_k ln ȳ_k, batch mean: Eq. 8 against a uniform count distribution.

    Eq. 8 is linear in N̄, so (1 - eps) Eq. 8 + eps this is Eq. 8 with label-smoothed counts,
    N̄'_k = (1 - eps) N̄_k + eps / C (not in the paper; head.count_smoothing). Every frame
    and every sample counts, a sample that on_too_long=skip leaves out of Eq. 8 too.
    """
    log_probs = F.log_softmax(flatten_prediction(logits).float(), dim=-1)
    log_y_bar = torch.logsumexp(log_probs, dim=1) - math.log(log_probs.shape[1])
    return -log_y_bar.mean(dim=1).mean()


def letter_cross_entropy(logits: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """(|S| / T) H(n̂, ŷ), batch mean: Eq. 8's letter term; not in the paper (head.letter_weight).

    With a = 1 - ȳ_blank the frames' letter share, ŷ_k = ȳ_k / a and n̂_k = N_k / |S| the
    letters' distributions, Eq. 8 splits exactly into -(1 - s) ln(1 - a) - s ln a (how many
    letters, s = |S| / T) plus s H(n̂, ŷ) (which letters). Both parts are smallest at the same
    place, so weighting the second by λ keeps Eq. 8's minimum and moves the balance of its
    gradient: at λ = 1 / s the question "which letters" counts as much as "how many".
    """
    log_probs = F.log_softmax(flatten_prediction(logits).float(), dim=-1)
    frames = log_probs.shape[1]
    targets, target_lengths = targets.to(log_probs.device), target_lengths.to(log_probs.device)
    counts = character_counts(targets, target_lengths, log_probs.shape[-1], target_lengths)
    letter_log_mass = torch.logsumexp(log_probs[..., 1:], dim=1)  # (B, C - 1): ln sum_t y^t_k
    log_share = letter_log_mass - torch.logsumexp(letter_log_mass, dim=1, keepdim=True)  # ln ŷ_k
    return -(counts[:, 1:] * log_share).sum(dim=1).div(frames).mean()


def skip_count(criterion: ACELoss, terms: ACETerms) -> dict[str, Tensor]:
    """{"ace_skipped": samples of the batch left out for a label longer than their frames}
    under on_too_long=skip (nothing otherwise: such a label raises), so the trainer can sum and
    log what the loss never saw. A CPU tensor, as the other outputs are tensors; reading it
    waits for no device."""
    if criterion.on_too_long != "skip":
        return {}
    return {"ace_skipped": torch.tensor(float(terms.skipped))}


def frame_entropy(logits: Tensor) -> Tensor:
    """Mean over frames (or map cells) of H(y^t), not in the paper.

    Eq. 8 is minimised by any prediction whose sum over frames matches the counts, including
    one that spreads the same bag of characters over every frame, which greedy decoding reads as
    nothing; a small weight on this term favours frames that commit to one class.
    """
    log_probs = F.log_softmax(flatten_prediction(logits).float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1).mean()


def presence_loss(logits: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """Binary cross-entropy of max_t y^t_k ("some frame reads class k") against whether k is in
    the label, averaged over the non-blank classes and the samples; not in the paper.

    At the start of training every frame predicts the same prior, and Eq. 9 moves class k at
    frame t in proportion to y^t_k / T (about 1e-5 on a 12x13 map), so nothing singles out the
    cells that hold a character for hundreds of steps. This term sends a gradient of about 1 to
    each present class's strongest frame (multiple-instance learning with max pooling), and it
    agrees with Eq. 8 at its optimum: a frame certain of each character of the label, none of
    any other class. ACE alone still sets how many frames read each class.
    """
    log_probs = F.log_softmax(flatten_prediction(logits).float(), dim=-1)  # (B, T, C)
    strongest = log_probs.max(dim=1).values[:, 1:]  # ln max_t y^t_k, blank (class 0) left out
    targets, target_lengths = targets.to(log_probs.device), target_lengths.to(log_probs.device)
    counts = character_counts(targets, target_lengths, log_probs.shape[-1], target_lengths)
    present = (counts[:, 1:] > 0).float()
    # ln(1 - p) as ln(-expm1(ln p)), finite while p < 1 (the clamp: a frame certain of a class
    # the label lacks costs ln(1e-7) instead of infinity)
    absent_log = (-strongest.clamp(max=-1e-7).expm1()).log()
    return -(present * strongest + (1 - present) * absent_log).mean()
