"""A binary attribute (e.g. one CelebA attribute): BCE with logits; accuracy and/or F1 over a split."""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from taskbalance.tasks._checks import require_floating_prediction, shape_mismatch
from taskbalance.tasks.base import MetricMeter, Task
from taskbalance.tasks.registry import TASKS
from taskbalance.types import HeadSpec, MetricSpec


def _as_vectors(task: str, prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Prediction and target as ``[B]`` (each may come as ``[B]`` or ``[B, 1]``)."""
    require_floating_prediction(task, prediction)

    def flat(tensor: Tensor) -> Tensor | None:
        if tensor.dim() == 1:
            return tensor
        if tensor.dim() == 2 and tensor.shape[1] == 1:
            return tensor[:, 0]
        return None

    logits, labels = flat(prediction), flat(target)
    if logits is None or labels is None or logits.shape != labels.shape:
        raise shape_mismatch(task, prediction, target, "logits [B] or [B, 1] and 0/1 labels [B] or [B, 1]")
    return logits, labels


def _check_binary(task: str, labels: Tensor) -> None:
    not_binary = (labels != 0) & (labels != 1)
    if bool(not_binary.any()):
        raise ValueError(
            f"task {task!r}: target must hold 0/1 labels, got {labels[not_binary][0].item()} "
            "(CelebA's −1/1 attributes must be mapped to 0/1)"
        )


ATTRIBUTE_METRICS = ("accuracy", "f1")


class BinaryAttributeMeter(MetricMeter):
    """Accuracy and F1 of the decision ``logit > 0`` (probability > ½) against 0/1 labels, from exact int counts of
    true/false positives and negatives over everything added.

    ``accuracy = (TP + TN) / N``; ``f1 = 2·TP / (2·TP + FP + FN)`` (the harmonic mean of precision and recall), and
    0 when the split holds no positive label and none is predicted (``2·TP + FP + FN = 0``, scikit-learn's
    ``zero_division=0``).
    """

    def __init__(self, task: str, metrics: Sequence[str] = ("accuracy",)) -> None:
        self.task = task
        self.metrics = tuple(metrics)
        self._true_positives = self._false_positives = self._false_negatives = self._count = 0

    def update(self, prediction: Tensor, target: Tensor) -> None:
        logits, labels = _as_vectors(self.task, prediction.detach(), target)
        _check_binary(self.task, labels)
        predicted, actual = logits > 0, labels == 1
        counts = torch.stack([(predicted & actual).sum(), (predicted & ~actual).sum(), (~predicted & actual).sum()])
        true_positives, false_positives, false_negatives = counts.tolist()  # one host read for the three
        self._true_positives += true_positives
        self._false_positives += false_positives
        self._false_negatives += false_negatives
        self._count += predicted.numel()

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            raise ValueError(f"task {self.task!r}: no sample was added; its metrics are undefined")
        tp, fp, fn = self._true_positives, self._false_positives, self._false_negatives
        values = {"accuracy": (self._count - fp - fn) / self._count, "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn
                  else 0.0}
        return {metric: values[metric] for metric in self.metrics}


@TASKS.register("binaryattribute")
class BinaryAttribute(Task):
    """A yes/no attribute per sample; each CelebA attribute is its own task (Kirchdorfer et al. 2024).

    Loss: mean binary cross-entropy on logits, ``L = −(1/B) Σ_i [y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))]``,
    computed stably from the logits z. Metrics (``metrics``, default ``("accuracy",)``), over the whole split, of
    the decision ``[z > 0]``: ``accuracy`` ↑ (fraction in [0, 1] of samples with ``[z > 0] = y``) and ``f1`` ↑
    (``2·TP / (2·TP + FP + FN)``, 0 without any positive label or prediction). Sener & Koltun 2018 (MGDA) report
    each CelebA attribute's error, i.e. 1 − accuracy; the CelebA experiment of FAMO's code (Liu et al. 2023) scores
    each attribute by F1: ``metrics=("f1",)`` compares with the latter.

    Args:
        name: the task's name, e.g. ``"smiling"``.
        metrics: which of ``"accuracy"`` and ``"f1"`` to report, in the order given (each enters Δm).

    Example:
        >>> import torch
        >>> task = BinaryAttribute("smiling", metrics=("accuracy", "f1"))
        >>> logits, labels = torch.tensor([3.0, -1.0, 0.5, -2.0]), torch.tensor([1, 0, 0, 0])
        >>> meter = task.meter(); meter.update(logits, labels); meter.compute()  # TP 1, FP 1, FN 0
        {'accuracy': 0.75, 'f1': 0.6666666666666666}
    """

    likelihood = "classification"

    def __init__(self, name: str, metrics: Sequence[str] = ("accuracy",)) -> None:
        super().__init__(name)
        self.metric_names = check_attribute_metrics(metrics, f"task {name!r}")

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(1, dense=False)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return tuple(MetricSpec(metric, higher_is_better=True) for metric in self.metric_names)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        logits, labels = _as_vectors(self.name, prediction, target)
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

    def meter(self) -> BinaryAttributeMeter:
        return BinaryAttributeMeter(self.name, self.metric_names)

    def check_targets(self, target: Tensor) -> None:
        """0/1 labels only (binary cross-entropy takes any number, and goes negative for a −1/1 encoding)."""
        _check_binary(self.name, target)

    def __repr__(self) -> str:
        return f"BinaryAttribute(name={self.name!r}, metrics={self.metric_names!r})"


def check_attribute_metrics(metrics: object, owner: str) -> tuple[str, ...]:
    """``metrics`` as a tuple of distinct names from :data:`ATTRIBUTE_METRICS`, or a ``ValueError`` naming ``owner``.

    Example:
        >>> check_attribute_metrics(["f1"], "dataset 'celeba'")
        ('f1',)
    """
    if isinstance(metrics, str):  # one name would make a second run id for the same experiment as [name]
        raise ValueError(f"{owner}: metrics must be a list of metric names, e.g. {json.dumps([metrics])}, got the "
                         f"string {metrics!r}")
    names = metrics
    if not isinstance(names, Sequence) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{owner}: metrics must be a non-empty list of {' and '.join(ATTRIBUTE_METRICS)}, got "
                         f"{metrics!r}")
    unknown = [n for n in names if n not in ATTRIBUTE_METRICS]
    if unknown or len(set(names)) != len(names):
        problem = f"unknown metric(s) {', '.join(map(repr, unknown))}" if unknown else "a metric named twice"
        raise ValueError(f"{owner}: {problem} in {list(names)!r}; the metrics are {', '.join(ATTRIBUTE_METRICS)}")
    return tuple(names)
