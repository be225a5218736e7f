"""A character n-gram language model over a charset's class indices, for decoding both heads.

CTC's alignment lets its BiLSTM learn which letter follows which (an implicit language model);
Eq. 8 sees only counts and cannot teach that (docs/REPRODUCING.md, "Words against random
strings"). This gives CTC and ACE the same explicit prior at decoding time, learned from the
renderer's own vocabulary (wordfreq's English list, installed with the project): nothing is
downloaded and no benchmark label is read.
"""

from __future__ import annotations

import functools
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence

from ace_str.data.charset import Charset
from ace_str.data.synth.words import DEFAULT_WORD_WEIGHTS, WordSampler

BOUNDARY = 0  # the blank's index: pads the context before a word and, predicted, ends it


class CharNGram:
    """Interpolated Witten-Bell n-gram over class indices 1..C-1 and the word end.

    P(s | h) = (c(h, s) + u(h) P(s | h')) / (c(h) + u(h)), u(h) the number of distinct symbols
    seen after h and h' the context one symbol shorter, down to the uniform 1 / C. Witten-Bell
    needs no tuning and gives unseen continuations (codes, numbers) a share that shrinks with how
    varied the context's continuations were.
    """

    def __init__(self, sequences: Iterable[Sequence[int]], num_classes: int, order: int = 5):
        if order < 1:
            raise ValueError(f"language model order must be at least 1, not {order}")
        if num_classes < 2:
            raise ValueError(f"a language model needs at least one symbol, got {num_classes}")
        self.order = order
        self.num_classes = num_classes
        counts: dict[tuple[int, ...], dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.num_sequences = 0
        for sequence in sequences:
            if any(not 0 < s < num_classes for s in sequence):
                raise ValueError(
                    f"sequence {list(sequence)} holds a class outside 1..{num_classes - 1}"
                )
            padded = (BOUNDARY,) * (order - 1) + tuple(sequence) + (BOUNDARY,)
            for i in range(order - 1, len(padded)):
                for k in range(order):
                    counts[padded[i - k : i]][padded[i]] += 1
            self.num_sequences += 1
        if not self.num_sequences:
            raise ValueError("a language model needs at least one training sequence")
        self._counts = {h: dict(c) for h, c in counts.items()}
        self._totals = {h: sum(c.values()) for h, c in self._counts.items()}
        self._cache: dict[tuple[tuple[int, ...], int], float] = {}

    def context(self, history: Sequence[int]) -> tuple[int, ...]:
        """The last order - 1 symbols of ``history``, padded with the word start."""
        width = self.order - 1
        if width == 0:
            return ()
        tail = tuple(history[-width:])
        return (BOUNDARY,) * (width - len(tail)) + tail

    def log_prob(self, history: Sequence[int], symbol: int) -> float:
        """ln P(symbol | history); ``symbol`` 0 is the end of the word."""
        context = self.context(history)
        key = (context, symbol)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        prob = 1.0 / self.num_classes
        for k in range(len(context) + 1):
            h = context[len(context) - k :]
            seen = self._counts.get(h)
            if seen is None:  # a longer context is unseen as well
                break
            types = len(seen)
            prob = (seen.get(symbol, 0) + types * prob) / (self._totals[h] + types)
        value = math.log(prob)
        self._cache[key] = value
        return value

    def score(self, sequence: Sequence[int]) -> float:
        """ln P of the whole word, its end included."""
        total = 0.0
        for i, symbol in enumerate(sequence):
            total += self.log_prob(sequence[:i], symbol)
        return total + self.log_prob(sequence, BOUNDARY)


@functools.lru_cache(maxsize=4)
def _english(symbols: tuple[str, ...], order: int, vocab_size: int) -> CharNGram:
    charset = Charset(list(symbols))
    words = WordSampler(charset, weights={"words": 1.0}, vocab_size=vocab_size).words
    numbers = WordSampler(charset, weights={"numbers": 1.0})
    rng = random.Random(0)
    share = DEFAULT_WORD_WEIGHTS["numbers"] / DEFAULT_WORD_WEIGHTS["words"]
    texts = words + [numbers.sample(rng) for _ in range(round(share * len(words)))]
    sequences = [charset.encode(label) for label in map(charset.normalize, texts) if label]
    return CharNGram(sequences, charset.num_classes, order)


def english_language_model(charset: Charset, order: int = 5, vocab_size: int = 50000) -> CharNGram:
    """The n-gram of the renderer's text without its random strings: wordfreq's ``vocab_size``
    most frequent English words that ``charset`` can write, each once (the renderer draws them
    alike), and its number formats in the renderer's proportion to words (1 : 7); random strings
    are left out, they are there to keep the model from leaning on a prior like this one."""
    if not isinstance(charset, Charset):
        raise TypeError(f"english_language_model needs a Charset, got {type(charset).__name__}")
    return _english(tuple(charset.symbols), order, vocab_size)
