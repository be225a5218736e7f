"""Scoring the validation sets during training, in the run's charset."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from ace_str.build.loaders import eval_loader
from ace_str.data.charset import Charset
from ace_str.scoring.evaluator import EvalResult, evaluate_batches


class Validation:
    """The run's validation sets and how to read them: ``batch_size`` and ``num_workers`` of the
    training data, ``keep_images`` images per set kept for the TensorBoard grid.

    Labels were normalised by the run's charset when loaded, so readings are compared to them
    as they are (``protocol="exact"``): a charset the standard protocol would erase (say,
    punctuation only) cannot make every reading correct.
    """

    def __init__(
        self,
        sets: dict[str, Dataset],
        charset: Charset,
        device: torch.device,
        batch_size: int,
        num_workers: int,
        keep_images: int,
    ) -> None:
        self.sets = sets
        self.charset = charset
        self.device = device
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.keep_images = keep_images

    def score(self, model: torch.nn.Module, dataset: Dataset) -> EvalResult:
        loader = eval_loader(dataset, self.charset, self.batch_size, self.num_workers)
        return evaluate_batches(
            model,
            loader,
            self.charset,
            self.device,
            protocol="exact",
            keep_images=self.keep_images,
        )

    def scores(self, model: torch.nn.Module) -> Iterator[tuple[str, EvalResult]]:
        """Each set's result in config order, scored as it is asked for (the first set is the
        one ``trainer.monitor`` watches)."""
        for name, dataset in self.sets.items():
            yield name, self.score(model, dataset)
