"""Semantic segmentation: per-pixel cross-entropy with an ignore label; mIoU and pixel accuracy over a split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from taskbalance.tasks._checks import (
    require_floating_prediction,
    require_integer_target,
    require_positive_int,
    shape_mismatch,
)
from taskbalance.tasks.base import MetricMeter, Task
from taskbalance.tasks.registry import TASKS
from taskbalance.types import HeadSpec, MetricSpec


def _check_pair(task: str, num_classes: int, prediction: Tensor, target: Tensor) -> None:
    require_floating_prediction(task, prediction)
    require_integer_target(task, target)
    expected = f"logits [B, {num_classes}, H, W] and labels [B, H, W]"
    fits = prediction.dim() == 4 and target.dim() == 3 and prediction.shape[1] == num_classes
    if not fits or prediction.shape[0] != target.shape[0] or prediction.shape[2:] != target.shape[1:]:
        raise shape_mismatch(task, prediction, target, expected)


def _check_labels(task: str, num_classes: int, ignore_index: int, labels: Tensor) -> None:
    """``labels``: the non-ignored pixels' labels."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise ValueError(
            f"task {task!r}: target label {bad} is outside [0, {num_classes}) and is not the ignore label "
            f"{ignore_index}"
        )


class SegmentationMeter(MetricMeter):
    """One confusion matrix over a whole split; mIoU and pixel accuracy are read from it at the end.

    Rows are target classes, columns predicted classes (the arg-max of the logits); pixels labelled
    ``ignore_index`` are not counted. Counts are int64, so they are exact for any split size.

    * ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``; ``miou`` is the mean of IoU_c over the classes that occur in the
      split's targets or predictions. A class absent from both has 0/0 and is left out of the mean rather than
      counted as 0 or 1. (LibMTL's, MTAN's and Nash-MTL's code average over every class and give NaN then; on the
      whole NYUv2 and Cityscapes test splits every class occurs, and the two agree.)
    * ``pixel_acc = Σ_c TP_c / (number of non-ignored pixels)``.

    Both are fractions in [0, 1].
    """

    def __init__(self, task: str, num_classes: int, ignore_index: int) -> None:
        self.task = task
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._confusion: Tensor | None = None

    def update(self, prediction: Tensor, target: Tensor) -> None:
        _check_pair(self.task, self.num_classes, prediction, target)
        predicted = prediction.detach().argmax(dim=1)
        valid = target != self.ignore_index
        labels, predicted = target[valid].long(), predicted[valid]
        _check_labels(self.task, self.num_classes, self.ignore_index, labels)
        counts = torch.bincount(labels * self.num_classes + predicted, minlength=self.num_classes**2)
        counts = counts.reshape(self.num_classes, self.num_classes)
        self._confusion = counts if self._confusion is None else self._confusion + counts

    @property
    def confusion_matrix(self) -> Tensor:
        """``[num_classes, num_classes]`` int64 counts, rows = target class, columns = predicted class."""
        if self._confusion is None:
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        return self._confusion.clone()

    def compute(self) -> dict[str, float]:
        confusion = self.confusion_matrix.double()
        total = confusion.sum()
        if total == 0:
            raise ValueError(f"task {self.task!r}: no labelled (non-ignored) pixel was added; mIoU is undefined")
        true_positives = confusion.diagonal()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - true_positives
        present = union > 0
        return {
            "miou": float((true_positives[present] / union[present]).mean()),
            "pixel_acc": float(true_positives.sum() / total),
        }


@TASKS.register("semanticsegmentation")
class SemanticSegmentation(Task):
    """Per-pixel classification into ``num_classes`` classes, with pixels labelled ``ignore_index`` left out.

    Loss: mean cross-entropy over the non-ignored pixels of the batch,
    ``L = −(1/|V|) Σ_{p∈V} log softmax(z_p)[y_p]`` with V the pixels whose label is not ``ignore_index``.
    A batch with no labelled pixel has loss 0 (kept on the graph) instead of 0/0 = NaN.

    Metrics (fractions in [0, 1], accumulated over the whole split by :class:`SegmentationMeter`):
    ``miou`` ↑ (main metric), ``pixel_acc`` ↑. This is the segmentation task of NYUv2 (13 classes) and Cityscapes
    (7 classes) as used by Liu et al. 2019 (MTAN) and Kirchdorfer et al. 2024.

    Args:
        name: the task's name.
        num_classes: number of classes C (≥ 2); the prediction holds logits ``[B, C, H, W]``.
        ignore_index: label of unlabelled pixels in the target ``[B, H, W]`` (−1 in MTAN's data); must not be a
            real class index in ``[0, C)``.

    Example:
        >>> import torch
        >>> task = SemanticSegmentation("seg", num_classes=2)
        >>> logits = torch.tensor([[[[4.0, -4.0]], [[-4.0, 4.0]]]])  # [1, 2, 1, 2]: predicts classes 0, 1
        >>> meter = task.meter(); meter.update(logits, torch.tensor([[[0, -1]]]))
        >>> meter.compute()
        {'miou': 1.0, 'pixel_acc': 1.0}
    """

    likelihood = "classification"

    def __init__(self, name: str, num_classes: int, ignore_index: int = -1) -> None:
        super().__init__(name)
        self.num_classes = require_positive_int(f"task {name!r}", "num_classes", num_classes, minimum=2)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or 0 <= ignore_index < num_classes:
            raise ValueError(
                f"task {name!r}: ignore_index must be an integer outside [0, {num_classes}) so that it cannot "
                f"hide a real class, got {ignore_index!r}"
            )
        self.ignore_index = ignore_index

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(self.num_classes, dense=True)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return (MetricSpec("miou", higher_is_better=True), MetricSpec("pixel_acc", higher_is_better=True))

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        _check_pair(self.name, self.num_classes, prediction, target)
        target = target.long()
        total = F.cross_entropy(prediction, target, ignore_index=self.ignore_index, reduction="sum")
        # Dividing by max(|V|, 1) on the device avoids a host sync and gives 0 instead of NaN for an all-ignored batch.
        labelled = (target != self.ignore_index).sum().clamp(min=1)
        return total / labelled

    def meter(self) -> SegmentationMeter:
        return SegmentationMeter(self.name, self.num_classes, self.ignore_index)

    def check_targets(self, target: Tensor) -> None:
        """Every pixel's label in ``[0, num_classes)`` or the ignore label."""
        _check_labels(self.name, self.num_classes, self.ignore_index, target[target != self.ignore_index])

    def __repr__(self) -> str:
        return (
            f"SemanticSegmentation(name={self.name!r}, num_classes={self.num_classes}, "
            f"ignore_index={self.ignore_index})"
        )
