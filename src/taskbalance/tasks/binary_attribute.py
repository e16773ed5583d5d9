"""A binary attribute (e.g. one CelebA attribute): BCE with logits; accuracy over a split."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from taskbalance.tasks._checks import require_floating_prediction, shape_mismatch
from taskbalance.tasks.accuracy import AccuracyMeter
from taskbalance.tasks.base import Task
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


class BinaryAttributeMeter(AccuracyMeter):
    """Accuracy of the decision ``logit > 0`` (probability > ½) against 0/1 labels."""

    def correct(self, prediction: Tensor, target: Tensor) -> Tensor:
        logits, labels = _as_vectors(self.task, prediction, target)
        _check_binary(self.task, labels)
        return (logits > 0) == (labels == 1)


@TASKS.register("binaryattribute")
class BinaryAttribute(Task):
    """A yes/no attribute per sample; each CelebA attribute is its own task (Kirchdorfer et al. 2024).

    Loss: mean binary cross-entropy on logits, ``L = −(1/B) Σ_i [y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))]``,
    computed stably from the logits z. Metric: ``accuracy`` ↑ (fraction in [0, 1] of samples with
    ``[z > 0] = y``, over the whole split).

    Args:
        name: the task's name, e.g. ``"smiling"``.

    Example:
        >>> import torch
        >>> task = BinaryAttribute("smiling")
        >>> logits, labels = torch.tensor([3.0, -1.0, 0.5, -2.0]), torch.tensor([1, 0, 0, 0])
        >>> meter = task.meter(); meter.update(logits, labels); meter.compute()
        {'accuracy': 0.75}
    """

    likelihood = "classification"

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(1, dense=False)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return (MetricSpec("accuracy", higher_is_better=True),)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        logits, labels = _as_vectors(self.name, prediction, target)
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

    def meter(self) -> BinaryAttributeMeter:
        return BinaryAttributeMeter(self.name)

    def check_targets(self, target: Tensor) -> None:
        """0/1 labels only (binary cross-entropy takes any number, and goes negative for a −1/1 encoding)."""
        _check_binary(self.name, target)
