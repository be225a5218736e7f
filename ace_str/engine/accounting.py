"""What a run skipped and what it trained on, kept as counts the batches and steps hand over.

Samples skipped while loading arrive inside each Batch (the collator ships them from the
worker that met them), so counting them is a sum over batches; nothing is read back from a
dataset or a module global. Non-finite updates are counted here too, with the limit that stops
a run which only produces them.
"""

from __future__ import annotations

import logging
from collections import Counter

from ace_str.data.collate import Batch
from ace_str.engine import distributed

log = logging.getLogger(__name__)

# skip reason -> the loss output that counts it per batch (summed, never averaged)
LOSS_SKIPS = {"ace_label_too_long": "ace_skipped"}


def format_counts(counter: Counter) -> str:
    """``reason: count`` pairs in a stable order, for log lines."""
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items())) or "none"


class Accounting:
    """This rank's counts: ``skipped`` samples by reason, ``source_counts`` trained on by
    mixing source, and non-finite updates (``nonfinite_in_row``, ``nonfinite_total``)."""

    def __init__(self, max_nonfinite_in_row: int) -> None:
        self.max_nonfinite_in_row = max_nonfinite_in_row
        self.skipped: Counter = Counter()
        self.source_counts: Counter = Counter()
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0

    def add(self, batch: Batch) -> None:
        """Count what loading ``batch`` skipped and which mixing sources fed it."""
        self.source_counts.update(batch.sources)
        for skip in batch.skipped:
            self.skipped[skip.reason] += 1
            log.debug("skipped %s %s: %s", skip.source, skip.key, skip.reason)

    def add_loss_skips(self, outs: list[dict]) -> None:
        """Count the samples a loss left out of this step (ACE's too-long labels under
        ``on_too_long=skip``, reported as ``ace_skipped``), summed over its micro-batches."""
        for reason, key in LOSS_SKIPS.items():
            n = sum(int(o[key]) for o in outs if key in o)
            if n:
                self.skipped[reason] += n

    def totals(self, dist: distributed.DistInfo) -> tuple[Counter, Counter]:
        """Skips and source counts summed over the ranks (a collective: every rank calls it)."""
        return (
            distributed.sum_counts(self.skipped, dist),
            distributed.sum_counts(self.source_counts, dist),
        )

    def nonfinite(self, what: str, step: int) -> bool:
        """Count a skipped update; True once ``max_nonfinite_in_row`` of them came in a row."""
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        log.warning(
            "non-finite %s at step %d: update skipped (%d in a row)",
            what,
            step,
            self.nonfinite_in_row,
        )
        return self.nonfinite_in_row >= self.max_nonfinite_in_row

    def finite(self) -> None:
        """An update went through: the run of non-finite ones is over."""
        self.nonfinite_in_row = 0

    def log_skips(self) -> None:
        if self.skipped:
            log.warning(
                "samples skipped while loading (this rank): %s", format_counts(self.skipped)
            )
