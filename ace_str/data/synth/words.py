"""Text sources for the synthetic renderer: real words, random strings and formatted numbers.

Real words teach the language prior that scene text mostly follows, random strings stop the
model from relying on it (licence plates, codes), and numbers cover prices, times and dates.
Every sampled text fits the charset once case-folded, so the label is exactly what is drawn.
"""

from __future__ import annotations

import functools
import itertools
import random
import string
from collections.abc import Callable

import wordfreq

from ace_str.data.charset import Charset

DEFAULT_WORD_WEIGHTS = {"words": 0.7, "random": 0.2, "numbers": 0.1}
DEFAULT_CASING = {"lower": 0.6, "upper": 0.2, "title": 0.2}


@functools.lru_cache(maxsize=4)
def english_words(n: int) -> tuple[str, ...]:
    """The ``n`` most frequent English words (cached: wordfreq takes ~0.3 s for 50k)."""
    return tuple(wordfreq.top_n_list("en", n))


@functools.lru_cache(maxsize=4)
def _frequencies(n: int) -> dict[str, float]:
    return {w: wordfreq.word_frequency(w, "en") for w in english_words(n)}


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


# Number formats with the symbols each needs beyond digits; a format is used only when the
# charset holds those symbols, so a lower36 model sees plain digit runs only.
_NUMBER_FORMATS: list[tuple[str, Callable[[random.Random], str]]] = [
    ("", lambda r: str(r.randint(0, 10 ** r.randint(1, 6)))),
    ("", lambda r: _digits(r, r.randint(4, 10))),
    (".", lambda r: f"{r.randint(0, 999)}.{_digits(r, r.randint(1, 2))}"),
    (",", lambda r: f"{r.randint(1, 999)},{_digits(r, 3)}"),
    ("$.", lambda r: f"${r.randint(0, 999)}.{_digits(r, 2)}"),
    ("%", lambda r: f"{r.randint(0, 100)}%"),
    (":", lambda r: f"{r.randint(0, 23)}:{r.randint(0, 59):02d}"),
    ("-", lambda r: f"{_digits(r, 3)}-{_digits(r, 4)}"),
    ("/", lambda r: f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1950, 2030)}"),
]


class WordSampler:
    """Draws the text to render; upper/title case is drawn too, the label is case-folded later.

    ``weights`` mixes the sources ("words", "random", "numbers"); a source the charset cannot
    feed (no digits, no word survives the filter) is dropped. ``casing`` weighs "lower",
    "upper" and "title" case; a casing whose result leaves a case-sensitive charset is skipped.
    ``frequency_power`` draws a word with probability proportional to its corpus frequency to
    that power: 0 draws every word of the vocabulary alike (mean length ~7 characters), 0.75
    gives about the word lengths of scene text (IIIT5K: a third of its words have 1-3
    characters, against an eighth at 0), 1 follows running text.
    """

    def __init__(
        self,
        charset: Charset,
        weights: dict[str, float] | None = None,
        vocab_size: int = 50000,
        max_length: int = 25,
        casing: dict[str, float] | None = None,
        frequency_power: float = 0.0,
    ) -> None:
        weights = dict(DEFAULT_WORD_WEIGHTS if weights is None else weights)
        casing = dict(DEFAULT_CASING if casing is None else casing)
        unknown = (set(weights) - set(DEFAULT_WORD_WEIGHTS)) | (set(casing) - set(DEFAULT_CASING))
        if unknown:
            raise ValueError(f"unknown word source or casing: {sorted(unknown)}")
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.charset = charset
        self.max_length = max_length
        self.words = [w for w in english_words(vocab_size) if self._fits(w, max_length)]
        if frequency_power < 0:
            raise ValueError(f"frequency_power must be >= 0, got {frequency_power}")
        self.word_cum_weights: list[float] | None = None
        if frequency_power > 0 and self.words:
            freqs = _frequencies(vocab_size)
            self.word_cum_weights = list(
                itertools.accumulate(freqs[w] ** frequency_power for w in self.words)
            )
        self.digits = [s for s in charset.symbols if s in string.digits]
        alnum = [s for s in charset.symbols if s.isalnum()]
        self.random_symbols = alnum or list(charset.symbols)
        self.number_formats = [
            fmt for extra, fmt in _NUMBER_FORMATS if all(ch in charset for ch in extra)
        ]
        available = {"words": bool(self.words), "random": True, "numbers": bool(self.digits)}
        self.sources = [k for k, w in weights.items() if w > 0 and available[k]]
        self.source_weights = [weights[k] for k in self.sources]
        if not self.sources:
            raise ValueError(f"no word source with positive weight can feed {charset!r}")
        self.casings = [k for k, w in casing.items() if w > 0]
        self.casing_weights = [casing[k] for k in self.casings]
        if not self.casings:
            raise ValueError("casing needs at least one positive weight")

    def _fits(self, text: str, max_length: int) -> bool:
        folded = text.lower() if self.charset.lowercase else text
        return 0 < len(text) <= max_length and all(ch in self.charset for ch in folded)

    def sample(self, rng: random.Random) -> str:
        """One text to draw; ``charset.normalize`` of it is the label."""
        (source,) = rng.choices(self.sources, self.source_weights)
        if source == "words":
            if self.word_cum_weights is None:
                word = rng.choice(self.words)
            else:
                (word,) = rng.choices(self.words, cum_weights=self.word_cum_weights)
            text = self._cased(word, rng)
        elif source == "numbers":
            text = self._number(rng)
        else:
            length = rng.randint(1, min(self.max_length, 12))
            text = self._cased("".join(rng.choice(self.random_symbols) for _ in range(length)), rng)
        return text[: self.max_length]

    def _cased(self, word: str, rng: random.Random) -> str:
        (casing,) = rng.choices(self.casings, self.casing_weights)
        cased = {"lower": word.lower, "upper": word.upper, "title": word.title}[casing]()
        return cased if self._fits(cased, len(cased)) else word

    def _number(self, rng: random.Random) -> str:
        if len(self.digits) < len(string.digits):
            length = rng.randint(1, min(self.max_length, 8))
            return "".join(rng.choice(self.digits) for _ in range(length))
        return rng.choice(self.number_formats)(rng)
