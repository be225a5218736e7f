"""What a run shows while it trains: the tqdm bar, TensorBoard scalars and figures, log lines.

Only rank 0 writes; on the other ranks the bar is disabled and there is no writer, but the
throughput window still runs so every rank logs at the same steps.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ace_str.data.charset import Charset
from ace_str.engine.accounting import format_counts
from ace_str.scoring.evaluator import EvalResult
from ace_str.viz.grid import captioned_grid
from ace_str.viz.maps import input_map_figure

log = logging.getLogger(__name__)

VAL_METRICS = ("word_accuracy", "one_minus_ned", "cer", "correct_rate", "accurate_rate")


def add_grid(writer: SummaryWriter, tag: str, images, captions, step: int) -> None:
    """A captioned image grid as a TensorBoard figure, closed so figures do not pile up."""
    fig = captioned_grid(images, captions)
    writer.add_figure(tag, fig, step)
    plt.close(fig)


class ProgressLog:
    """One run's bar and TensorBoard writer (rank 0's, under ``folder``).

    ``examples`` readings per validation set are printed and ``maps`` prediction maps drawn.
    """

    def __init__(
        self, folder: Path, main: bool, total: int, initial: int, examples: int, maps: int
    ) -> None:
        self.writer = SummaryWriter(str(folder)) if main else None
        self.bar = tqdm(
            total=total, initial=initial, desc="train", dynamic_ncols=True, disable=not main
        )
        self.examples = examples
        self.maps = maps
        self._logged_skips: Counter = Counter()
        self._window_start, self._window_images = time.perf_counter(), 0

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()

    def advance(self) -> None:
        self.bar.update(1)

    def set_total(self, total: int) -> None:
        """The run's new length (a budget check re-sized it)."""
        self.bar.total = total
        self.bar.refresh()

    def count_images(self, images: int) -> None:
        """Images trained on since the last train log line (all ranks together)."""
        self._window_images += images

    def index_drops(self, dropped: Counter, step: int) -> None:
        """Records dropped while indexing the training data (bad labels), by reason."""
        if self.writer is None:
            return
        for reason, count in sorted(dropped.items()):
            self.writer.add_scalar(f"data/dropped_at_index/{reason}", count, step)
        if dropped:
            log.info("training records dropped at indexing: %s", format_counts(dropped))

    def train(
        self,
        step: int,
        out: dict[str, torch.Tensor],
        lr: float,
        skipped: Counter,
        sources: Counter,
        nonfinite: int,
        sources_every: int,
    ) -> None:
        """One train log point: the step's outputs, throughput since the last point, and the
        run's counts (summed over ranks); samples per source every ``sources_every`` steps."""
        elapsed = time.perf_counter() - self._window_start
        speed = self._window_images / max(elapsed, 1e-9)
        self._window_start, self._window_images = time.perf_counter(), 0
        writer = self.writer
        if writer is None:
            return
        for name, value in out.items():
            writer.add_scalar(f"train/{name}", float(value.detach()), step)
        writer.add_scalar("train/lr", lr, step)
        writer.add_scalar("train/images_per_second", speed, step)
        writer.add_scalar("train/nonfinite_steps", nonfinite, step)
        writer.add_scalar("data/skipped/total", sum(skipped.values()), step)
        for reason, count in skipped.items():
            writer.add_scalar(f"data/skipped/{reason}", count, step)
        for name, count in sources.items():
            writer.add_scalar(f"data/source_samples/{name}", count, step)
        if skipped != self._logged_skips:
            log.warning("step %d: samples skipped so far: %s", step, format_counts(skipped))
            self._logged_skips = skipped
        if sources and step % sources_every == 0:
            log.info("step %d: samples per source: %s", step, format_counts(sources))
        self.bar.set_postfix(loss=f"{out['loss'].item():.4f}", img_s=f"{speed:.0f}", lr=f"{lr:.3g}")

    def nonfinite_stop(self, nonfinite: int, step: int) -> None:
        """The count that stopped the run (not the last one logged), then the writer closes."""
        if self.writer is not None:
            self.writer.add_scalar("train/nonfinite_steps", nonfinite, step)
            self.writer.close()

    def validation(
        self, name: str, result: EvalResult, step: int, model: torch.nn.Module, charset: Charset
    ) -> dict[str, float]:
        """One validation set's scores, example readings, image grid and prediction maps;
        returns its metrics keyed ``set/metric``."""
        summary = result.totals.summary()
        metrics = {f"{name}/{metric}": summary[metric] for metric in VAL_METRICS}
        shown = result.readings[: self.examples]
        lines = "\n".join(
            f"  {r.truth:>25} | {r.prediction:<25} | {r.confidence:.3f}" for r in shown
        )
        tqdm.write(
            f"[step {step}] {name}: word acc {summary['word_accuracy']:.2%}, "
            f"1-NED {summary['one_minus_ned']:.3f}, CR {summary['correct_rate']:.3f}, "
            f"AR {summary['accurate_rate']:.3f} ({summary['samples']} samples)\n"
            f"  {'gt':>25} | {'prediction':<25} | confidence\n{lines}"
        )
        writer = self.writer
        if writer is None:
            return metrics
        for key, value in metrics.items():
            writer.add_scalar(f"val/{key}", value, step)
        captions = [f"{r.prediction} | {r.truth}" for r in result.readings]
        add_grid(writer, f"val/{name}/images", result.images, captions, step)
        for i, image in enumerate(result.images[: self.maps]):
            # the prediction map over the input (Fig. 5); a 1D model shows a 1 x T strip
            fig = input_map_figure(model, charset, image)
            writer.add_figure(f"val/{name}/map_{i}", fig, step)
        return metrics

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()
