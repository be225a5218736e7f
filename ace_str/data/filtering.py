"""What loading one LMDB or labelled folder kept and dropped: the label filter both apply."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ace_str.data.charset import Charset, FilterStats


@dataclass
class SourceStats:
    """What loading one LMDB or labelled folder kept and dropped, by reason.

    ``corrupt`` counts undecodable images met by ``__getitem__`` in *this* process; DataLoader
    workers keep their own copies, so read it from the main process only when num_workers=0.
    """

    path: str
    total: int = 0
    kept: int = 0
    stripped: int = 0
    dropped: Counter = field(default_factory=Counter)
    corrupt: int = 0

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        return (
            f"{self.path}: total {self.total}, kept {self.kept}, "
            f"stripped {self.stripped}, dropped {sum(self.dropped.values())} ({reasons})"
        )


def filter_label(
    label: str,
    charset: Charset,
    max_label_length: int,
    stats: SourceStats,
    filter_labels: bool = True,
) -> str | None:
    """Normalise a raw label with the charset and length limit; None drops the sample.

    With ``filter_labels=False`` the raw label is kept untouched (for scoring against the
    original ground truth); only a label that could not be read at all is dropped then.
    """
    if not filter_labels:
        return label
    counts = FilterStats()
    text = charset.normalize(label, counts)
    stats.stripped += counts.stripped
    stats.dropped.update(counts.skipped)
    if text is not None and len(text) > max_label_length:
        stats.dropped["too_long"] += 1
        return None
    return text
