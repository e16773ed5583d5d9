"""Classification into C classes: cross-entropy; accuracy over a split."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from taskbalance.tasks._checks import (
    require_floating_prediction,
    require_integer_target,
    require_positive_int,
    shape_mismatch,
)
from taskbalance.tasks.accuracy import AccuracyMeter
from taskbalance.tasks.base import Task
from taskbalance.tasks.registry import TASKS
from taskbalance.types import HeadSpec, MetricSpec


def _check_pair(task: str, num_classes: int, prediction: Tensor, target: Tensor) -> None:
    require_floating_prediction(task, prediction)
    require_integer_target(task, target)
    fits = prediction.dim() == 2 and prediction.shape[1] == num_classes and target.dim() == 1
    if not fits or prediction.shape[0] != target.shape[0]:
        raise shape_mismatch(task, prediction, target, f"logits [B, {num_classes}] and labels [B]")


def _check_labels(task: str, num_classes: int, target: Tensor) -> None:
    outside = (target < 0) | (target >= num_classes)
    if bool(outside.any()):
        raise ValueError(f"task {task!r}: target label {target[outside][0].item()} is outside [0, {num_classes})")


class ClassificationMeter(AccuracyMeter):
    """Top-1 accuracy: a sample is correct when the arg-max of its logits is its label."""

    def __init__(self, task: str, num_classes: int) -> None:
        super().__init__(task)
        self.num_classes = num_classes

    def correct(self, prediction: Tensor, target: Tensor) -> Tensor:
        _check_pair(self.task, self.num_classes, prediction, target)
        _check_labels(self.task, self.num_classes, target)
        return prediction.argmax(dim=1) == target


@TASKS.register("classification")
class Classification(Task):
    """One label out of ``num_classes`` per sample.

    Loss: mean cross-entropy ``L = −(1/B) Σ_i log softmax(z_i)[y_i]``. Metric: ``accuracy`` ↑ (top-1, a fraction in
    [0, 1], over the whole split).

    Args:
        name: the task's name.
        num_classes: number of classes C (≥ 2); the prediction holds logits ``[B, C]``, the target labels ``[B]``.

    Example:
        >>> import torch
        >>> task = Classification("digit", num_classes=3)
        >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> meter = task.meter(); meter.update(logits, torch.tensor([0, 1])); meter.compute()
        {'accuracy': 0.5}
    """

    likelihood = "classification"

    def __init__(self, name: str, num_classes: int) -> None:
        super().__init__(name)
        self.num_classes = require_positive_int(f"task {name!r}", "num_classes", num_classes, minimum=2)

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(self.num_classes, dense=False)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return (MetricSpec("accuracy", higher_is_better=True),)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        _check_pair(self.name, self.num_classes, prediction, target)
        return F.cross_entropy(prediction, target.long())

    def meter(self) -> ClassificationMeter:
        return ClassificationMeter(self.name, self.num_classes)

    def check_targets(self, target: Tensor) -> None:
        """Labels in ``[0, num_classes)`` (cross-entropy on the CPU fails without the task's name, on CUDA with a
        device-side assert)."""
        _check_labels(self.name, self.num_classes, target)

    def __repr__(self) -> str:
        return f"Classification(name={self.name!r}, num_classes={self.num_classes})"
