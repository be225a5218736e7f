"""Lexicon-constrained reading (the "50", "1k", "Full" columns of the ACE paper's Table 2).

Files read next to a set's ``labels.tsv`` (labelled folders only; clovaai LMDBs carry none):

* ``lexicon_<NAME>.tsv``: one lexicon per image, ``filename<TAB>WORD,WORD,...`` with the
  filename as in labels.tsv (SVT's ``lexicon_50.tsv``; ``lexicon_1k.tsv`` for IIIT5K-1k);
* ``lexicon_<NAME>.txt``: one lexicon for the whole set, one word a line (``lexicon_full.txt``).

The constrained reading is the lexicon word nearest to the free reading in edit distance, both
compared after the protocol's normalisation. Ties are broken by the model: each tied word is
scored by the head's own training loss with the word as the label on that image's logits (ACE:
the Eq. 8 cross-entropy between the word's character counts and the predicted aggregate ȳ;
CTC: -log p(word | image), per label symbol under normalize_by_length), lowest first. A word
the charset cannot encode or longer than a 1D prediction's frames, or any word when the head's
loss cannot score logits alone (e.g. a teacher-forced attention decoder), scores +inf, so the
remaining ties fall back to alphabetical order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rapidfuzz.distance import Levenshtein
from torch import Tensor

from ace_str.data.charset import Charset
from ace_str.data.folder import resolve_image
from ace_str.scoring.metrics import normalize_text

log = logging.getLogger(__name__)

Scorer = Callable[[str], float]  # lower is better


@dataclass
class Lexicon:
    """A named lexicon: per-image word lists (keyed by image path under the set root) and/or
    one list for every image."""

    name: str
    per_image: dict[str, list[str]] = field(default_factory=dict)
    shared: list[str] | None = None

    def words_for(self, key: str) -> list[str] | None:
        return self.shared if self.shared is not None else self.per_image.get(key)


def image_key(root: Path, image: Path) -> str:
    """How an image of a labelled folder is named in predictions and lexicon lookups."""
    return image.relative_to(root).as_posix()


def read_per_image_lexicon(path: Path, root: Path) -> dict[str, list[str]]:
    """``filename<TAB>W1,W2,...`` lines; malformed lines and unknown images are errors."""
    table: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        filename, tab, words = line.partition("\t")
        if not tab:
            raise ValueError(f"{path}:{number}: expected filename<TAB>WORD,WORD,... got {line!r}")
        image = resolve_image(root, filename.strip())
        if image is None:
            raise FileNotFoundError(f"{path}:{number}: no image {filename.strip()!r} in {root}")
        table[image_key(root, image)] = [w.strip() for w in words.split(",") if w.strip()]
    return table


def load_lexicons(root: str | Path) -> list[Lexicon]:
    """Every ``lexicon_*.tsv`` / ``lexicon_*.txt`` in a set folder, sorted by name."""
    root = Path(root).resolve()  # as LabelledFolderDataset keeps it, so keys agree
    lexicons = []
    for path in sorted(root.glob("lexicon_*.tsv")) + sorted(root.glob("lexicon_*.txt")):
        name = path.stem.removeprefix("lexicon_")
        if path.suffix == ".tsv":
            lexicons.append(Lexicon(name, per_image=read_per_image_lexicon(path, root)))
        else:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            lexicons.append(Lexicon(name, shared=[w.strip() for w in lines if w.strip()]))
        log.info("%s: lexicon %r from %s", root.name, name, path.name)
    return lexicons


def constrain(
    prediction: str, words: Sequence[str], protocol: str = "standard", score: Scorer | None = None
) -> str:
    """The nearest word to ``prediction``; ties by ``score`` (lower first), then alphabetical.

    Returns the normalised word ("" for an empty lexicon).
    """
    pred = normalize_text(prediction, protocol)
    candidates = sorted({w for w in (normalize_text(w, protocol) for w in words) if w})
    if not candidates:
        return ""
    distances = [Levenshtein.distance(pred, w) for w in candidates]
    best = min(distances)
    tied = [w for w, d in zip(candidates, distances, strict=True) if d == best]
    if len(tied) == 1 or score is None:
        return tied[0]
    return min(tied, key=lambda w: (score(w), w))


def head_loss_scorer(model: torch.nn.Module, charset: Charset, logits: Tensor) -> Scorer:
    """Score a word by the model head's loss with the word as the label (one image's logits)."""

    def score(word: str) -> float:
        text = charset.normalize(word)
        if text is None or (logits.dim() == 2 and len(text) > logits.shape[0]):
            return math.inf  # unencodable, or longer than the frames of a 1D prediction
        targets = torch.tensor([charset.encode(text)], device=logits.device)
        lengths = torch.tensor([len(text)], device=logits.device)
        try:
            value = model.head.loss(logits.unsqueeze(0), targets, lengths)["loss"]
        except (ValueError, RuntimeError, NotImplementedError):
            return math.inf
        return float(value)

    return score
