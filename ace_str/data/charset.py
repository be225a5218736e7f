"""Charsets and the label tokenizer shared by every CTC-style head (index 0 is the blank)."""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

BLANK = 0

PRESETS: dict[str, str] = {
    "lower36": string.digits + string.ascii_lowercase,
    "mixed62": string.digits + string.ascii_lowercase + string.ascii_uppercase,
    "printable94": string.digits + string.ascii_letters + string.punctuation,
}

OUT_OF_CHARSET_POLICIES = ("strip", "skip")


@dataclass
class FilterStats:
    """Counts of what `Charset.normalize` did, owned by the caller that reports them: a
    charset is shared by datasets, workers and the evaluator, so it keeps no counts itself."""

    kept: int = 0
    stripped: int = 0
    skipped: Counter = field(default_factory=Counter)

    def merge(self, other: FilterStats) -> None:
        self.kept += other.kept
        self.stripped += other.stripped
        self.skipped.update(other.skipped)

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"kept {self.kept}, stripped {self.stripped}, skipped ({reasons})"


class Charset:
    """An ordered set of symbols; symbol i is class i + 1 so class 0 stays the blank.

    Labels are case-folded when the charset holds no upper-case letter. Symbols outside the
    charset are stripped or the label is skipped (``on_unknown``); membership is a plain set
    lookup, so regex metacharacters in the charset mean nothing special.
    """

    def __init__(
        self,
        symbols: str | Sequence[str] | None = None,
        preset: str | None = None,
        path: str | Path | None = None,
        on_unknown: str = "strip",
    ) -> None:
        given = [x is not None for x in (symbols, preset, path)]
        if sum(given) != 1:
            raise ValueError("Charset needs exactly one of symbols=, preset= or path=")
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(
                    f"unknown charset preset {preset!r}; choose from {sorted(PRESETS)}"
                )
            symbols = PRESETS[preset]
        elif path is not None:
            symbols = read_charset_file(path)
        assert symbols is not None
        symbols = list(symbols)
        if not symbols:
            raise ValueError("a charset needs at least one symbol")
        duplicates = [s for s, n in Counter(symbols).items() if n > 1]
        if duplicates:
            raise ValueError(f"charset has duplicate symbols: {duplicates[:10]}")
        if on_unknown not in OUT_OF_CHARSET_POLICIES:
            raise ValueError(
                f"on_unknown must be one of {OUT_OF_CHARSET_POLICIES}, not {on_unknown!r}"
            )
        self.symbols: list[str] = symbols
        self.on_unknown = on_unknown
        self._index = {s: i + 1 for i, s in enumerate(symbols)}
        self.lowercase = not any(s != s.lower() for s in symbols)

    @property
    def num_classes(self) -> int:
        """Classes including the blank."""
        return len(self.symbols) + 1

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._index

    def __repr__(self) -> str:
        head = "".join(self.symbols[:40])
        return f"Charset({len(self.symbols)} symbols: {head!r}{'...' if len(self) > 40 else ''})"

    def normalize(self, label: str, stats: FilterStats | None = None) -> str | None:
        """Case-fold and filter a label; None means the sample should be skipped.

        What was done is counted into ``stats`` when given; without it nothing is counted.
        """
        if self.lowercase:
            label = label.lower()
        kept = "".join(ch for ch in label if ch in self._index)
        changed = len(kept) != len(label)
        if changed and self.on_unknown == "skip":
            if stats is not None:
                stats.skipped["out_of_charset"] += 1
            return None
        if stats is not None:
            stats.stripped += changed
            if kept:
                stats.kept += 1
            else:
                stats.skipped["empty_label"] += 1
        return kept or None

    def encode(self, label: str) -> list[int]:
        """Class indices of a normalised label; unknown symbols are an error here."""
        try:
            return [self._index[ch] for ch in label]
        except KeyError as err:
            raise ValueError(
                f"symbol {err.args[0]!r} of label {label!r} is not in {self!r}"
            ) from None

    def decode(self, indices: Iterable[int]) -> str:
        """Symbols of class indices; the blank (0) contributes nothing."""
        return "".join(self.symbols[i - 1] for i in indices if i != BLANK)

    def encode_batch(self, labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ``(B, L)`` targets (pad = blank) and ``(B,)`` lengths, the CTC/ACE call."""
        encoded = [self.encode(label) for label in labels]
        lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
        targets = torch.zeros(len(encoded), max([1, *lengths.tolist()]), dtype=torch.long)
        for row, e in enumerate(encoded):
            targets[row, : len(e)] = torch.tensor(e, dtype=torch.long)
        return targets, lengths


def read_charset_file(path: str | Path) -> list[str]:
    """One symbol a line, UTF-8; blank lines are ignored, a space is written as a line ' '."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"charset file not found: {path}")
    symbols = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        symbol = line.rstrip("\r\n")
        if symbol == "":
            continue
        if len(symbol) != 1 and symbol.strip() != symbol:
            symbol = symbol.strip()
        if len(symbol) != 1:
            raise ValueError(f"{path}:{number}: expected one symbol a line, got {symbol!r}")
        symbols.append(symbol)
    return symbols
