"""The contract every task kind fulfils: a loss, metrics with their direction, and a meter.

A task is a small object that knows its name, what head it needs, how to compute its training loss from a
prediction and a target, and how to accumulate its evaluation metrics over a whole split (a
:class:`MetricMeter`, so that e.g. mIoU comes from one confusion matrix over the split).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from torch import Tensor

from taskbalance.types import HeadSpec, MetricSpec


class MetricMeter(ABC):
    """Accumulates one task's metrics over an evaluation pass."""

    @abstractmethod
    def update(self, prediction: Tensor, target: Tensor) -> None:
        """Add one batch (prediction as the model outputs it, target as the dataset yields it)."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Metric name → value over everything added so far (names as in :attr:`Task.metrics`)."""


class Task(ABC):
    """One task of a multi-task problem.

    Attributes:
        name: unique task name within a problem, e.g. ``"segmentation"``.
        likelihood: the likelihood form of the task's loss in Kendall et al.'s (2018) uncertainty weighting:
            ``"classification"`` for a softmax/sigmoid cross-entropy over categorical outputs, ``"regression"``
            for a Gaussian/Laplace-type loss on continuous outputs (UW's ½ factor).
    """

    likelihood: ClassVar[Literal["regression", "classification"]] = "regression"

    def __init__(self, name: str) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"task name must be a non-empty string, got {name!r}")
        self.name = name

    @property
    @abstractmethod
    def head(self) -> HeadSpec:
        """What the model's head for this task must output."""

    @property
    @abstractmethod
    def metrics(self) -> tuple[MetricSpec, ...]:
        """The task's metrics with their direction; the first is the task's main metric."""

    @abstractmethod
    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Scalar training loss of one batch (keeps its graph)."""

    @abstractmethod
    def meter(self) -> MetricMeter:
        """A fresh accumulator for this task's metrics."""

    def check_targets(self, target: Tensor) -> None:
        """Raise a ``ValueError`` naming the task unless one batch's ``target`` (as the dataset yields it) holds
        values the loss can learn from: class labels in range, 0/1 attributes; a no-op here.

        The training loop calls it on the first training batch of every epoch, so that a wrongly encoded dataset
        (CelebA's −1/1 attributes, labels counted from 1) fails before the first step, not after an epoch trained on
        it (the meters check every evaluated batch). One host sync per task and epoch.
        """
        return None  # a task whose loss takes any value (depth, normals, regression)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
