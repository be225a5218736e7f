"""ACE decoding with a character n-gram (models/language_model.py): a beam search over the
frames' readings in ACE's sense (nothing collapsed), and, for heads trained with smoothed
counts, a choice among the counts the frames make likely, ordered by where their mass lies."""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ace_str.models.decoding import BLANK, _log_add, crossings, flatten_2d

if TYPE_CHECKING:
    from ace_str.models.language_model import CharNGram

MIN_MASS = 0.05  # classes with less summed probability are read 0 times, as by the mass decoder
COUNT_SPAN = 6.0  # counts less likely than the most likely one by this much (ln) are not tried


def count_log_probs(probs: np.ndarray, max_count: int) -> np.ndarray:
    """ln P(n) for n = 0..max_count of the number of frames that hold the class, each frame t
    holding it independently with probability ``probs[t]`` (the Poisson-binomial law). Its mean
    is sum_t y^t_k, the count Eq. 8 trains; its spread says how sure that count is."""
    dist = np.zeros(max_count + 1)
    dist[0] = 1.0
    for p in probs:
        dist[1:] = dist[1:] * (1.0 - p) + dist[:-1] * p
        dist[0] *= 1.0 - p
    return np.log(np.clip(dist, 1e-300, None))


def ace_lm_decode(
    logits: Tensor,
    lm: CharNGram,
    lm_weight: float,
    length_bonus: float = 0.0,
    order: str = "column",
    candidates: int = 32,
) -> tuple[list[list[int]], Tensor]:
    """Reads the count vector n maximising sum_k ln P(n_k) + lm_weight ln P_LM(S) +
    length_bonus |S|, where S is n's reading: instance j of class k (n_k of them, mass m_k) sits
    where the class's running mass reaches (j - 1/2) m_k / n_k, instances sorted by position.

    The mass decoder rounds each class on its own; a letter the frames hold at 0.4 is lost, one
    split between look-alikes is lost twice, and lowering the bar adds as many wrong letters as it
    saves (docs/REPRODUCING.md, "ACE's plateau"). Here the near counts of every class are tried
    (those within COUNT_SPAN of the most likely, the ``candidates`` best combinations by the
    frames' own count probabilities) and the language model picks among them, so "hollywod" and
    "hollywood" are told apart by the word, not by a threshold. With ``lm_weight`` 0 it reads
    each class's most likely count. Confidence: the frames' probability of the chosen counts.
    """
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, not {candidates}")
    probs = flatten_2d(logits, order).detach().double().softmax(dim=-1).cpu().numpy()
    sequences, confidences = [], []
    for frames in probs:
        running = frames.cumsum(axis=0)  # (T, C)
        mass = running[-1]
        by_class = torch.from_numpy(np.ascontiguousarray(frames.T))  # (C, T), rows contiguous
        running_by_class = torch.from_numpy(np.ascontiguousarray(running.T))
        options: list[tuple[int, list[tuple[int, float]]]] = []
        for k in np.flatnonzero(mass >= MIN_MASS).tolist():
            if k == BLANK:
                continue
            top = math.ceil(mass[k]) + 1
            logp = count_log_probs(frames[:, k], min(top, frames.shape[0]))
            best = float(logp.max())
            near = [(n, float(lp)) for n, lp in enumerate(logp) if lp >= best - COUNT_SPAN]
            options.append((k, near))
        combos: list[tuple[float, tuple[tuple[int, int], ...]]] = [(0.0, ())]
        for k, near in options:
            grown = [(s + lp, chosen + ((k, n),)) for s, chosen in combos for n, lp in near]
            combos = heapq.nlargest(candidates, grown, key=lambda item: item[0])
        best_score, best_reading, best_counts = -math.inf, [], 0.0
        for count_score, chosen in combos:
            reading = _reading(by_class, running_by_class, chosen)
            score = count_score + lm_weight * lm.score(reading) + length_bonus * len(reading)
            if score > best_score:
                best_score, best_reading, best_counts = score, reading, count_score
        sequences.append(best_reading)
        confidences.append(math.exp(best_counts))
    return sequences, torch.tensor(confidences, dtype=torch.float32)


def _reading(probs: Tensor, running: Tensor, chosen: tuple[tuple[int, int], ...]) -> list[int]:
    """Class indices of the counts ``chosen``, in the order their instances' mass lies
    (instance j of n where the class's running mass reaches (j - 1/2) m / n); ``probs`` and
    ``running`` are (C, T), a class per row."""
    instances: list[tuple[float, int]] = []
    for k, n in chosen:
        if n == 0:
            continue
        column = running[k]
        targets = (torch.arange(n, dtype=column.dtype) + 0.5) * (column[-1] / n)
        _, positions = crossings(column, probs[k], targets)
        instances.extend((position, k) for position in positions.tolist())
    instances.sort()
    return [k for _, k in instances]


def ace_frame_beam_search(
    logits: Tensor,
    lm: CharNGram,
    lm_weight: float,
    length_bonus: float = 0.0,
    order: str = "column",
    beam_width: int = 8,
) -> tuple[list[list[int]], Tensor]:
    """Beam search over readings in ACE's own sense: each frame (cell, in reading order) holds
    the blank or one character independently, and a reading is the frames' characters in order
    with blanks dropped and nothing collapsed (two adjacent 'l' frames read "ll", as in ACE's
    greedy reading). A reading's score is ln of the sum over every frame labelling that gives
    it, plus ``lm_weight`` ln P_LM and ``length_bonus`` per character, the word's end included
    at the last frame. A letter spread 0.5 / 0.5 over two frames reads once with probability
    0.5, twice with 0.25: the language model settles it, and it can also swap a letter for the
    frame's second choice, which the count candidates of ``ace_lm_decode`` cannot. Each frame
    extends the beams by its ``beam_width`` most probable characters. Confidence: the network's
    probability of the reading."""
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, not {beam_width}")
    log_probs = flatten_2d(logits, order).detach().float().log_softmax(dim=-1).cpu()
    width = min(beam_width, log_probs.shape[-1] - 1)
    candidates = (log_probs[..., 1:].topk(width, dim=-1).indices + 1).tolist()

    def fused(prefix: tuple[int, ...], symbol: int) -> float:
        return lm_weight * lm.log_prob(prefix, symbol) + length_bonus

    sequences, confidences = [], []
    for frames, frame_candidates in zip(log_probs.tolist(), candidates, strict=True):
        beams: dict[tuple[int, ...], float] = {(): 0.0}
        network: dict[tuple[int, ...], float] = {(): 0.0}
        for row, symbols in zip(frames, frame_candidates, strict=True):
            grown: dict[tuple[int, ...], float] = {}
            grown_net: dict[tuple[int, ...], float] = {}
            for prefix, score in beams.items():
                moves = [(prefix, row[BLANK], 0.0)]
                moves += [((*prefix, s), row[s], fused(prefix, s)) for s in symbols]
                for reading, frame, language in moves:
                    total = score + frame + language
                    grown[reading] = _log_add(grown.get(reading, -math.inf), total)
                    net = network[prefix] + frame
                    grown_net[reading] = _log_add(grown_net.get(reading, -math.inf), net)
            kept = heapq.nlargest(beam_width, grown.items(), key=lambda item: item[1])
            beams = dict(kept)
            network = {reading: grown_net[reading] for reading in beams}
        final = {p: s + fused(p, BLANK) - length_bonus for p, s in beams.items()}
        best = max(final, key=final.__getitem__)
        sequences.append(list(best))
        confidences.append(math.exp(network[best]))
    return sequences, torch.tensor(confidences, dtype=torch.float32)
