"""Synthetic printed text lines in CJK fonts: a stand-in for handwritten Chinese lines (Sec. 4.2).

CASIA-HWDB cannot be shipped, so ``experiment=hctr_ace_quick`` trains on lines of random
characters and Chinese words (wordfreq's list) drawn by the scene-text renderer in every installed
font that draws the whole charset. CJK fonts usually come as collections (``.ttc``), which the
Latin font search skips, so this module searches them too, reusing its per-font check.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib import ft2font
from PIL import Image
from torch.utils.data import Dataset

from ace_str.data.charset import Charset
from ace_str.data.synth.config import RenderConfig
from ace_str.data.synth.dataset import sample_rng
from ace_str.data.synth.fonts import FontError, default_font_dirs, font_problem
from ace_str.data.synth.render import render_word

log = logging.getLogger(__name__)

LINE_FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# Printed lines on paper-like backgrounds: little rotation, no perspective or curves.
LINE_RENDER: dict[str, Any] = {
    "font_size": (28, 40),
    "padding": (0.05, 0.3),
    "rotation": (-1.5, 1.5),
    "perspective_prob": 0.0,
    "lowres_prob": 0.1,
    "height": 64,
}


def find_line_fonts(
    charset: Charset, font_dirs: list[str] | None = None, min_fonts: int = 1
) -> list[Path]:
    """Sorted font files (``.ttf``, ``.otf``, first face of a ``.ttc``) that draw every symbol
    of ``charset``; one file per (family, style). Raises FontError naming the folders."""
    extra = tuple(str(Path(d).expanduser()) for d in font_dirs or ())
    fonts, searched = _scan(extra, "".join(charset.symbols))
    if len(fonts) < min_fonts:
        raise FontError(
            f"found {len(fonts)} font(s) drawing all {len(charset)} symbols of {charset!r}, need "
            f"{min_fonts}. Searched: {', '.join(searched)}. Install a CJK font (Debian: apt-get "
            "install fonts-wqy-microhei or fonts-noto-cjk) or pass font_dirs=[...]."
        )
    return list(fonts)


@functools.lru_cache(maxsize=8)
def _scan(extra_dirs: tuple[str, ...], symbols: str) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """A font lacking a symbol fails on its cmap before any rendering, so Latin fonts are
    dismissed in microseconds; only candidates render the whole charset once."""
    usable: dict[tuple[str, str], Path] = {}
    folders = [*default_font_dirs(), *map(Path, extra_dirs)]
    seen: set[Path] = set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in LINE_FONT_SUFFIXES):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            problem = font_problem(path, symbols)
            if problem is not None:
                log.debug("rejected font %s: %s", path, problem)
                continue
            face = ft2font.FT2Font(str(path))
            usable.setdefault((face.family_name, face.style_name), path)
    log.info("%d fonts draw all %d line symbols", len(usable), len(symbols))
    return tuple(sorted(usable.values())), tuple(str(f) for f in folders)


@functools.lru_cache(maxsize=4)
def _chinese_words(symbols: str, vocab_size: int) -> tuple[str, ...]:
    """wordfreq's most frequent Chinese words written wholly in ``symbols``."""
    from wordfreq import get_frequency_dict  # the raw list; its tokenizer would need jieba

    allowed = set(symbols)
    words = [w for w in get_frequency_dict("zh") if set(w) <= allowed]
    return tuple(words[:vocab_size])


class SyntheticLineDataset(Dataset):
    """``(image, label)`` text lines of ``min_len``..``max_len`` characters.

    With probability ``word_prob`` a line strings together frequent Chinese words (so the
    model sees real character neighbours), otherwise uniformly random charset symbols (so rare
    characters appear too). Sample ``i`` depends on (seed, i) only, like SyntheticWordDataset.
    """

    def __init__(
        self,
        charset: Charset,
        length: int = 100_000,
        seed: int = 0,
        transform: Callable[[Image.Image], Any] | None = None,
        font_dirs: list[str] | None = None,
        min_len: int = 2,
        max_len: int = 12,
        word_prob: float = 0.5,
        vocab_size: int = 20000,
        min_fonts: int = 1,
        render: dict[str, Any] | None = None,
    ) -> None:
        if length < 1:
            raise ValueError("length must be positive")
        if not 1 <= min_len <= max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
        if not 0.0 <= word_prob <= 1.0:
            raise ValueError(f"word_prob must lie in [0, 1], not {word_prob}")
        self.charset = charset
        self.length = length
        self.seed = seed
        self.transform = transform
        self.min_len, self.max_len = min_len, max_len
        self.word_prob = word_prob
        self.vocab_size = vocab_size
        self.render_config = RenderConfig(**{**LINE_RENDER, **dict(render or {})})
        self.fonts = find_line_fonts(charset, list(font_dirs) if font_dirs else None, min_fonts)
        self.symbols = "".join(charset.symbols)
        if word_prob > 0 and not self.words:
            raise ValueError(f"no wordfreq Chinese word is written in {charset!r}; word_prob=0")

    @property
    def words(self) -> tuple[str, ...]:
        return _chinese_words(self.symbols, self.vocab_size)

    def __len__(self) -> int:
        return self.length

    def text(self, rng: random.Random) -> str:
        size = rng.randint(self.min_len, self.max_len)
        if rng.random() < self.word_prob:
            text = ""
            while len(text) < size:
                text += rng.choice(self.words)
            return text[:size]
        return "".join(rng.choice(self.symbols) for _ in range(size))

    def sample(self, index: int) -> tuple[Image.Image, str]:
        """The rendered PIL line and its label, before any transform."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = sample_rng(self.seed, index)
        text = self.text(rng)
        image = render_word(text, rng.choice(self.fonts), rng, self.render_config)
        return image, text

    def __getitem__(self, index: int) -> tuple[Any, str]:
        image, label = self.sample(index)
        return (self.transform(image) if self.transform is not None else image), label
