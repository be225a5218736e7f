"""Synthetic word images rendered on the fly: the training data when no LMDB is configured."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from ace_str.data.charset import Charset
from ace_str.data.synth.config import RenderConfig
from ace_str.data.synth.fonts import find_fonts, required_symbols
from ace_str.data.synth.render import render_word
from ace_str.data.synth.words import WordSampler

log = logging.getLogger(__name__)


def sample_rng(seed: int, index: int) -> random.Random:
    """The generator of one sample: a function of (seed, index) only, never of worker id,
    access order or global RNG state. String seeds go through SHA-512, so nearby pairs such as
    (0, 1_000_003) and (1, 0) do not collide the way an arithmetic mix could."""
    return random.Random(f"ace_str.synth:{seed}:{index}")


class SyntheticWordDataset(Dataset):
    """``(image, label)`` pairs drawn from words, random strings and numbers in random fonts.

    Sample ``i`` is identical across runs, workers and access orders for the same seed and
    fonts. Fonts are found at construction (so a missing font fails fast) but opened lazily in
    each worker; the word list is rebuilt per worker instead of being pickled. Arguments are
    plain types so Hydra can build it; ``render`` may be a dict of `RenderConfig` fields,
    ``recommended_fonts`` only warns (with the command that adds fonts) when fewer are found.
    ``word_weights``, ``casing`` and ``word_frequency_power`` are `WordSampler`'s source and
    casing weights and its ``frequency_power``.
    """

    def __init__(
        self,
        charset: Charset,
        length: int = 100_000,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
        render: RenderConfig | dict[str, Any] | None = None,
        word_weights: dict[str, float] | None = None,
        font_dirs: list[str] | None = None,
        min_fonts: int = 1,
        font_families: list[str] | None = None,
        vocab_size: int = 50000,
        max_length: int = 25,
        casing: dict[str, float] | None = None,
        word_frequency_power: float = 0.0,
        recommended_fonts: int = 0,
    ) -> None:
        if length < 1:
            raise ValueError("length must be positive")
        self.charset = charset
        self.length = length
        self.seed = seed
        self.transform = transform
        self.render_config = RenderConfig.from_any(render)
        self.word_weights = dict(word_weights) if word_weights is not None else None
        self.casing = dict(casing) if casing is not None else None
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.word_frequency_power = word_frequency_power
        self.fonts: list[Path] = find_fonts(
            list(font_dirs) if font_dirs else None, charset, min_fonts, font_families
        )
        if len(self.fonts) < recommended_fonts:
            log.warning(
                "only %d usable fonts, where this renderer setting was tuned with %d or more: "
                "run `bash scripts/install_fonts.sh` (Debian fonts-* packages) for the font "
                "variety its accuracy on real text depends on",
                len(self.fonts),
                recommended_fonts,
            )
        # Neighbouring-text fragments use only symbols every font was checked to draw.
        self.fragment_symbols = "".join(s for s in required_symbols(charset) if s.isalnum())
        # Built now so bad weights fail at construction rather than inside a worker.
        self._sampler: WordSampler | None = self._build_sampler()

    def _build_sampler(self) -> WordSampler:
        return WordSampler(
            self.charset,
            self.word_weights,
            self.vocab_size,
            self.max_length,
            self.casing,
            self.word_frequency_power,
        )

    @property
    def sampler(self) -> WordSampler:
        if self._sampler is None:
            self._sampler = self._build_sampler()
        return self._sampler

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sampler"] = None
        return state

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> tuple[Image.Image, str]:
        """The rendered PIL image and its normalised label, before any transform."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = sample_rng(self.seed, index)
        text = self.sampler.sample(rng)
        font = rng.choice(self.fonts)
        image = render_word(text, font, rng, self.render_config, self.fragment_symbols or None)
        label = self.charset.normalize(text)
        if label is None:
            raise RuntimeError(f"sampled text {text!r} does not fit {self.charset!r}")
        return image, label

    def __getitem__(self, index: int) -> tuple[Any, str]:
        image, label = self.sample(index)
        return (self.transform(image) if self.transform is not None else image), label
