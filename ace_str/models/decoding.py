"""Turning per-frame scores into class sequences: ACE counts, CTC alignments, 2D read order."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ace_str.models.language_model import CharNGram

BLANK = 0
READ_ORDERS = ("column", "row")


def flatten_2d(logits: Tensor, order: str = "column") -> Tensor:
    """(B, H, W, C) -> (B, H*W, C) in reading order.

    ``column``: column by column, left to right, each column top to bottom, the order the paper's
    authors describe for decoding (Sec. 4.1.2); ``row``: row-major. (B, T, C) passes through.
    """
    if logits.dim() == 3:
        return logits
    if order not in READ_ORDERS:
        raise ValueError(f"read order must be one of {READ_ORDERS}, not {order!r}")
    if order == "column":
        logits = logits.transpose(1, 2)
    return logits.flatten(1, 2)


def _best_path(logits: Tensor) -> tuple[Tensor, Tensor]:
    probs = logits.float().softmax(dim=-1)
    best_prob, best = probs.max(dim=-1)
    return best, best_prob


def ace_greedy_decode(logits: Tensor, order: str = "column") -> tuple[list[list[int]], Tensor]:
    """Argmax per frame, blanks dropped, repeats kept: ACE counts characters, so two adjacent
    'l' frames read "ll". Confidence is the product of the kept frames' probabilities (the mean
    blank probability for an empty reading)."""
    best, best_prob = _best_path(flatten_2d(logits, order))
    return _ace_reading(best, best_prob)


def _ace_reading(best: Tensor, best_prob: Tensor) -> tuple[list[list[int]], Tensor]:
    keep = best != BLANK
    sequences = [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]
    log_conf = torch.where(keep, best_prob.clamp_min(1e-30).log(), torch.zeros_like(best_prob))
    confidence = log_conf.sum(dim=1).exp()
    empty = ~keep.any(dim=1)
    confidence = torch.where(empty, best_prob.mean(dim=1), confidence)
    return sequences, confidence


def ace_count_decode(logits: Tensor, order: str = "column") -> tuple[list[list[int]], Tensor]:
    """Greedy ACE reading, then each class kept at most as often as ACE predicts it occurs.

    ACE trains sum_t y^t_k towards the count N_k (Eq. 8), so round(sum_t y^t_k) is the model's
    own count of class k. Where the greedy reading holds more k than that and some of them come
    from adjacent frames (one character firing in two frames: ``thursdayy``), the repeat with
    the lower probability is dropped until the counts agree or no adjacent repeat is left; a
    reading never gains symbols. Confidence as ``ace_greedy_decode``.
    """
    logits = flatten_2d(logits, order)
    probs = logits.float().softmax(dim=-1)
    best_prob, best = probs.max(dim=-1)
    expected = probs.sum(dim=1).add(0.5).floor().clamp_min(1).long()  # (B, C): max(1, round)
    sequences, confidences = _ace_reading(best, best_prob)
    for b in range(best.shape[0]):
        frames = (best[b] != BLANK).nonzero().flatten().tolist()
        labels, scores = best[b].tolist(), best_prob[b].tolist()
        counts = Counter(labels[t] for t in frames)
        excess = {k: n - int(expected[b, k]) for k, n in counts.items() if n > expected[b, k]}
        if not excess:
            continue
        # adjacent frames of one class, the weaker of each pair first
        repeats = [
            (min(scores[t], scores[t + 1]), t if scores[t] < scores[t + 1] else t + 1)
            for t in frames
            if labels[t] in excess and t + 1 < len(labels) and labels[t + 1] == labels[t]
        ]
        dropped: set[int] = set()
        for _, t in sorted(repeats):
            if excess[labels[t]] > 0 and t not in dropped:
                dropped.add(t)
                excess[labels[t]] -= 1
        sequences[b] = [labels[t] for t in frames if t not in dropped]
    return sequences, confidences


def ace_peak_decode(logits: Tensor, order: str = "column") -> tuple[list[list[int]], Tensor]:
    """Each class read round(sum_t y^t_k) times, at its strongest cells, in reading order.

    Eq. 8 only asks that a class's probability summed over the frames (or map cells) match its
    count; it says nothing about that mass sitting in one cell. A 2D map can therefore count a
    word right while no cell's argmax is a character, and greedy decoding reads nothing. This
    reading takes the count from the sums and the positions from the peaks: for class k, the
    cells of highest y^t_k, skipping the 8 neighbours of a cell already taken for k (one
    character spread over adjacent cells is one peak). (B, T, C) logits are a one-row map.
    Confidence is the product over the peaks of the class's mass in the 3x3 cells around each
    (capped at 1); the mean blank probability for an empty reading.
    """
    if logits.dim() == 3:
        logits = logits.unsqueeze(1)  # (B, 1, T, C): frames along a single row
    if order not in READ_ORDERS:
        raise ValueError(f"read order must be one of {READ_ORDERS}, not {order!r}")
    probs = logits.detach().float().softmax(dim=-1).cpu()
    _, height, width, _ = probs.shape
    counts = probs[..., 1:].sum(dim=(1, 2)).add(0.5).floor().long()  # (B, C - 1)
    # each cell's class mass over its 3x3 neighbourhood, for the confidence
    local = (
        torch.nn.functional.avg_pool2d(
            probs.permute(0, 3, 1, 2), 3, stride=1, padding=1, count_include_pad=True
        )
        .mul(9)
        .permute(0, 2, 3, 1)
    )
    sequences, confidences = [], []
    for b in range(probs.shape[0]):
        peaks: list[tuple[int, int]] = []  # (reading position, class)
        log_conf = 0.0
        for k in (counts[b].nonzero().flatten() + 1).tolist():
            taken: list[tuple[int, int]] = []
            for cell in probs[b, :, :, k].flatten().argsort(descending=True).tolist():
                if len(taken) == counts[b, k - 1]:
                    break
                y, x = divmod(cell, width)
                if any(abs(y - ty) <= 1 and abs(x - tx) <= 1 for ty, tx in taken):
                    continue
                taken.append((y, x))
                position = x * height + y if order == "column" else y * width + x
                peaks.append((position, k))
                log_conf += math.log(min(1.0, max(float(local[b, y, x, k]), 1e-30)))
        peaks.sort()
        sequences.append([k for _, k in peaks])
        blank_mean = float(probs[b, :, :, BLANK].mean())
        confidences.append(math.exp(log_conf) if peaks else blank_mean)
    return sequences, torch.tensor(confidences, dtype=torch.float32)


def ace_mass_decode(
    logits: Tensor, order: str = "column", threshold: float = 0.5
) -> tuple[list[list[int]], Tensor]:
    """Each class read round(sum_t y^t_k) times, instance j where the class's running sum of
    probability over the frames (in reading order) reaches j - 1/2, instances sorted by that
    position. ``threshold`` moves the rounding: an instance needs that much mass (0.5: round;
    scripts/short_readings.py measures others).

    Eq. 8 asks only that a class's probability summed over the frames match its count, so a
    model early in training holds a letter as 0.25 in four neighbouring frames, which argmax
    reads as blanks. This reading takes the count from the sums and places each instance at the
    middle of its share of the mass: on peaky frames it equals greedy decoding, on spread ones it
    still reads the letter once, and "ll" held as mass 2 reads twice. The position is
    interpolated inside the frame where the running sum crosses, so two classes crossing in one
    frame keep their order. Confidence is the product over the instances of the class's mass in
    the crossing frame and its two neighbours (capped at 1); the mean blank probability for an
    empty reading.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"mass decoder threshold must be in (0, 1], got {threshold}")
    probs = flatten_2d(logits, order).detach().float().softmax(dim=-1).cpu()
    counts = probs[:, :, BLANK + 1 :].sum(dim=1).add(1.0 - threshold).floor().long()
    return _place_instances(probs, counts, lambda n, _mass: torch.arange(n) + threshold)


def ace_apportion_decode(logits: Tensor, order: str = "column") -> tuple[list[list[int]], Tensor]:
    """As many characters as the total letter mass, sum_k sum_t y^t_k over the letters, rounded;
    each class first gets the whole part of its own mass, and the characters left over go to the
    classes with the largest remainders (Hamilton's apportionment). Instance j of a class with
    mass m read n times sits where its running mass reaches (j - 1/2) m / n, in reading order.

    The mass decoder rounds each class on its own, so a character the model splits between
    look-alikes on a real crop ('o' 0.55 with '0' 0.43 on top of two certain 'o's: 2.47 and 0.43)
    loses the split share twice and the reading comes out a character short, the most frequent
    error of ACE models on IIIT5K. Here the total says a character is there and the largest
    remainder names it. Unlike the segment decoder, the count does not cut the frames, so letter
    mass scattered over blank frames does not shift which frames make up a character. Where the
    per-class roundings already add up to the rounded total (peaky frames), the reading equals
    the mass decoder's. Confidence as in the mass decoder.
    """
    probs = flatten_2d(logits, order).detach().float().softmax(dim=-1).cpu()
    mass = probs[:, :, BLANK + 1 :].sum(dim=1)  # (B, C - 1)
    counts = mass.floor()
    left = (mass.sum(dim=1) + 0.5).floor() - counts.sum(dim=1)  # (B,), at least 0
    order_by_remainder = (mass - counts).argsort(dim=1, descending=True)
    ranks = torch.empty_like(order_by_remainder)
    ranks.scatter_(1, order_by_remainder, torch.arange(mass.shape[1]).expand_as(mass).clone())
    counts = (counts + (ranks < left[:, None]).float()).long()
    return _place_instances(probs, counts, lambda n, m: (torch.arange(n) + 0.5) * (m / n))


def _place_instances(
    probs: Tensor, counts: Tensor, wanted: Callable[[int, float], Tensor]
) -> tuple[list[list[int]], Tensor]:
    """Read class k counts[b, k - 1] times, instance j where the class's running sum over the
    frames reaches wanted(n, mass)[j] (interpolated inside that frame), sorted by position.
    Confidence: the product over the instances of the class's mass in the crossing frame and
    its two neighbours (capped at 1); the mean blank probability for an empty reading."""
    running = probs.cumsum(dim=1)  # (B, T, C)
    padded = torch.nn.functional.pad(probs.transpose(1, 2), (1, 1))  # (B, C, T + 2)
    local = padded.unfold(2, 3, 1).sum(dim=-1)  # (B, C, T): mass of frames t - 1 .. t + 1
    sequences, confidences = [], []
    for b in range(probs.shape[0]):
        instances: list[tuple[float, int]] = []
        log_conf = 0.0
        for k in (counts[b].nonzero().flatten() + 1).tolist():
            column = running[b, :, k].contiguous()
            targets = wanted(int(counts[b, k - 1]), float(column[-1])).float()
            frames, positions = crossings(column, probs[b, :, k], targets)
            for t, position in zip(frames.tolist(), positions.tolist(), strict=True):
                instances.append((position, k))
                log_conf += math.log(min(1.0, max(float(local[b, k, t]), 1e-30)))
        instances.sort()
        sequences.append([k for _, k in instances])
        blank_mean = float(probs[b, :, BLANK].mean())
        confidences.append(math.exp(log_conf) if instances else blank_mean)
    return sequences, torch.tensor(confidences, dtype=torch.float32)


def crossings(running: Tensor, probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Where a class's running sum ``running`` (T,) of its frame probabilities ``probs`` (T,)
    reaches each of ``targets``: the frame, and the position interpolated inside it."""
    frames = torch.searchsorted(running, targets).clamp(max=running.numel() - 1)
    before = torch.where(frames > 0, running[(frames - 1).clamp(min=0)], 0.0)
    share = (targets - before) / probs[frames].clamp_min(1e-12)
    return frames, frames + share.clamp(0, 1)


def ace_segment_decode(logits: Tensor, order: str = "column") -> tuple[list[list[int]], Tensor]:
    """As many characters as the frames' total letter mass, sum_t (1 - y^t_blank), rounded; the
    running sum of that mass over the frames (in reading order) cut at every whole number, and
    each unit segment read as the class with the most probability inside it.

    The mass decoder rounds each class on its own, so a letter the model still splits between
    two look-alikes ('o' 0.45, 'a' 0.45) rounds to nothing twice and the reading comes out one
    character short, ACE's most frequent error early in training. Counting letters first and
    naming them second keeps that character; "ll" held as letter mass 2 still reads twice, and
    on peaky frames the reading equals greedy. Confidence is the product over the segments of
    the winning class's share of the segment; the mean blank probability for an empty reading.
    """
    probs = flatten_2d(logits, order).detach().float().softmax(dim=-1).cpu()
    letters = probs[:, :, BLANK + 1 :]  # (B, T, C - 1)
    mass = letters.sum(dim=-1)  # (B, T): letter mass of each frame
    upper = mass.cumsum(dim=1)
    lower = upper - mass
    counts = upper[:, -1].add(0.5).floor().long().tolist()
    sequences, confidences = [], []
    for b, count in enumerate(counts):
        if count == 0:
            sequences.append([])
            confidences.append(float(probs[b, :, BLANK].mean()))
            continue
        ends = torch.arange(1, count + 1, dtype=torch.float32)  # segment j is [j - 1, j]
        overlap = (
            torch.minimum(upper[b, :, None], ends) - torch.maximum(lower[b, :, None], ends - 1)
        ).clamp_min(0)  # (T, count): how much of frame t's letter mass falls in segment j
        share = overlap / mass[b, :, None].clamp_min(1e-12)
        segment_mass = share.T @ letters[b]  # (count, C - 1)
        best_mass, best = segment_mass.max(dim=1)
        sequences.append((best + BLANK + 1).tolist())
        confidences.append(float(best_mass.clamp(1e-30, 1.0).log().sum().exp()))
    return sequences, torch.tensor(confidences, dtype=torch.float32)


def ctc_greedy_decode(logits: Tensor) -> tuple[list[list[int]], Tensor]:
    """Best path, repeats collapsed, then blanks dropped; a blank between repeats keeps both."""
    best, best_prob = _best_path(logits)
    repeat = torch.zeros_like(best, dtype=torch.bool)
    repeat[:, 1:] = best[:, 1:] == best[:, :-1]
    keep = (best != BLANK) & ~repeat
    sequences = [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]
    log_conf = torch.where(keep, best_prob.clamp_min(1e-30).log(), torch.zeros_like(best_prob))
    confidence = torch.where(~keep.any(dim=1), best_prob.mean(dim=1), log_conf.sum(dim=1).exp())
    return sequences, confidence


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


def ctc_prefix_beam_search(
    logits: Tensor,
    beam_width: int,
    lm: CharNGram | None = None,
    lm_weight: float = 0.0,
    length_bonus: float = 0.0,
) -> tuple[list[list[int]], Tensor]:
    """CTC prefix beam search: keeps the ``beam_width`` most probable label prefixes, each scored
    by the sum over every alignment that collapses to it (ending in a blank or not), so a label
    spread over many weak frames can beat the single best path. Each frame extends the beams only
    by its ``beam_width`` most probable symbols. Confidence is the best prefix's probability.

    With ``lm`` (shallow fusion): each symbol a prefix takes on adds ``lm_weight`` ln P_LM(symbol
    | prefix) + ``length_bonus``, and the word's end adds ``lm_weight`` ln P_LM(end | prefix)
    before the final choice; the confidence stays the network's own probability of the reading.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, not {beam_width}")
    if logits.dim() != 3:
        raise ValueError(f"CTC beam search expects logits (B, T, C), got {tuple(logits.shape)}")
    log_probs = logits.detach().float().log_softmax(dim=-1).cpu()
    width = min(beam_width, log_probs.shape[-1] - 1)
    candidates = (log_probs[..., 1:].topk(width, dim=-1).indices + 1).tolist()

    def fused(prefix: tuple[int, ...], symbol: int) -> float:
        if lm is None:
            return 0.0
        return lm_weight * lm.log_prob(prefix, symbol) + length_bonus

    sequences, confidences = [], []
    for frames, frame_candidates in zip(log_probs.tolist(), candidates, strict=True):
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
        for row, symbols in zip(frames, frame_candidates, strict=True):
            grown: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
            for prefix, (p_blank, p_symbol) in beams.items():
                total = _log_add(p_blank, p_symbol)
                stay = grown[prefix]
                stay[0] = _log_add(stay[0], total + row[BLANK])
                if prefix:  # the last symbol repeated without a blank collapses into it
                    stay[1] = _log_add(stay[1], p_symbol + row[prefix[-1]])
                for symbol in symbols:
                    longer = grown[(*prefix, symbol)]
                    # a repeat is a new symbol only after a blank
                    source = p_blank if prefix and symbol == prefix[-1] else total
                    longer[1] = _log_add(longer[1], source + row[symbol] + fused(prefix, symbol))
            ranked = sorted(grown.items(), key=lambda item: _log_add(*item[1]), reverse=True)
            beams = {prefix: (p[0], p[1]) for prefix, p in ranked[:beam_width]}
        scored = {prefix: _log_add(*p) for prefix, p in beams.items()}
        if lm is not None:
            scored = {
                prefix: s + fused(prefix, BLANK) - length_bonus for prefix, s in scored.items()
            }
        best = max(scored, key=scored.__getitem__)
        sequences.append(list(best))
        network = _log_add(*beams[best])
        if lm is not None:  # take the language model's share back out of the confidence
            network -= sum(fused(best[:i], s) for i, s in enumerate(best))
        confidences.append(math.exp(network))
    return sequences, torch.tensor(confidences, dtype=torch.float32)
