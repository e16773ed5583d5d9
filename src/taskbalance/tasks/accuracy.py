"""Accuracy counted over a split: the meter of the classification tasks."""

from __future__ import annotations

from abc import abstractmethod

from torch import Tensor

from taskbalance.tasks.base import MetricMeter


class AccuracyMeter(MetricMeter):
    """``accuracy = (number of correct samples) / (number of samples)`` over everything added, as exact int counts.

    Subclasses decide per batch which samples are correct (and check their input).
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self._correct = 0
        self._count = 0

    @abstractmethod
    def correct(self, prediction: Tensor, target: Tensor) -> Tensor:
        """A bool tensor ``[B]``: whether each sample of the batch is predicted correctly."""

    def update(self, prediction: Tensor, target: Tensor) -> None:
        hits = self.correct(prediction.detach(), target)
        self._correct += int(hits.sum())
        self._count += hits.numel()

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            raise ValueError(f"task {self.task!r}: no sample was added; accuracy is undefined")
        return {"accuracy": self._correct / self._count}
