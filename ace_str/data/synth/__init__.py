"""Built-in synthetic word renderer, the default training data when no LMDB is configured."""

from ace_str.data.synth.config import RenderConfig
from ace_str.data.synth.dataset import SyntheticWordDataset, sample_rng
from ace_str.data.synth.fonts import FontError, find_fonts
from ace_str.data.synth.render import render_word
from ace_str.data.synth.words import WordSampler

__all__ = [
    "FontError",
    "RenderConfig",
    "SyntheticWordDataset",
    "WordSampler",
    "find_fonts",
    "render_word",
    "sample_rng",
]
