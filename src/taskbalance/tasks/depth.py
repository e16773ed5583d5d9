"""Depth (or inverse depth) estimation: L1 over valid pixels; absolute and relative error over a split."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.tasks._checks import require_floating_prediction, shape_mismatch
from taskbalance.tasks.averaging import BatchMeanMeter, check_averaging
from taskbalance.tasks.base import MetricMeter, Task
from taskbalance.tasks.registry import TASKS
from taskbalance.types import HeadSpec, MetricSpec


def _as_pair(task: str, prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Prediction ``[B, 1, H, W]`` and target ``[B, 1, H, W]`` (a target ``[B, H, W]`` gets its channel axis)."""
    require_floating_prediction(task, prediction)
    shaped = target.unsqueeze(1) if target.dim() == 3 else target
    if prediction.dim() != 4 or prediction.shape[1] != 1 or shaped.shape != prediction.shape:
        raise shape_mismatch(task, prediction, target, "prediction [B, 1, H, W] and target [B, 1, H, W] or [B, H, W]")
    return prediction, shaped.to(prediction.dtype)


class DepthMeter(MetricMeter):
    """Absolute and relative error over every valid pixel (target ≠ 0) of a split.

    With V the valid pixels of the whole split, p the prediction and t the target:

    * ``abs_err = (1/|V|) Σ_V |p − t|``
    * ``rel_err = (1/|V|) Σ_V |p − t| / |t|``

    Both are pixel-weighted over the split (each valid pixel counts once, however the split is batched), not means
    of per-batch or per-image means. Sums are accumulated in float64, the count in int64.
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self._abs_sum = 0.0
        self._rel_sum = 0.0
        self._count = 0

    def update(self, prediction: Tensor, target: Tensor) -> None:
        prediction, target = _as_pair(self.task, prediction.detach(), target)
        valid = target != 0
        truth = target[valid].double()
        error = (prediction[valid].double() - truth).abs()
        self._abs_sum += float(error.sum())
        self._rel_sum += float((error / truth.abs()).sum())
        self._count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            raise ValueError(f"task {self.task!r}: no valid pixel (target ≠ 0) was added; depth errors are undefined")
        return {"abs_err": self._abs_sum / self._count, "rel_err": self._rel_sum / self._count}


@TASKS.register("depth")
class Depth(Task):
    """Per-pixel depth regression; pixels whose target is 0 carry no ground truth and are left out.

    Loss: ``L = (1/|V|) Σ_{p∈V} |d̂_p − d_p|`` with V the pixels of the batch where the target d ≠ 0 (MTAN's depth
    loss, Liu et al. 2019). A batch without a valid pixel has loss 0 (kept on the graph) instead of 0/0 = NaN.

    Metrics (over the whole split, see :class:`DepthMeter`): ``abs_err`` ↓ (main metric), ``rel_err`` ↓.
    ``averaging="batch"`` averages each evaluation batch's values instead, as MTAN's and Nash-MTL's trainers
    (:mod:`taskbalance.tasks.averaging`).

    ``inverse=True`` marks the Cityscapes variant, whose targets are inverse depth (disparity) as in MTAN's
    pre-processed data. The mathematics and metric names are the same; only the unit differs, and inverse-depth
    losses are small (≈0.01), which matters for loss weighting (e.g. UW-SO's temperature; Kirchdorfer et al. 2024).

    Args:
        name: the task's name.
        inverse: whether the targets are inverse depth (documentation and ``repr`` only).
        averaging: ``"split"`` (default: every valid pixel of the split counts once) or ``"batch"``.

    Example:
        >>> import torch
        >>> task = Depth("depth")
        >>> prediction = torch.tensor([[[[1.0, 3.0, 9.0]]]])
        >>> target = torch.tensor([[[[2.0, 2.0, 0.0]]]])  # the last pixel is invalid
        >>> float(task.loss(prediction, target))
        1.0
        >>> meter = task.meter(); meter.update(prediction, target); meter.compute()
        {'abs_err': 1.0, 'rel_err': 0.5}
    """

    def __init__(self, name: str, inverse: bool = False, averaging: str = "split") -> None:
        super().__init__(name)
        if not isinstance(inverse, bool):
            raise ValueError(f"task {name!r}: inverse must be a bool, got {inverse!r}")
        self.inverse = inverse
        self.averaging = check_averaging(averaging, f"task {name!r}")

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(1, dense=True)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return (MetricSpec("abs_err", higher_is_better=False), MetricSpec("rel_err", higher_is_better=False))

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        prediction, target = _as_pair(self.name, prediction, target)
        valid = target != 0
        # where() rather than a product with the mask: an inf prediction on an invalid pixel must not give NaN.
        error = torch.where(valid, (prediction - target).abs(), torch.zeros_like(prediction))
        return error.sum() / valid.sum().clamp(min=1)

    def meter(self) -> MetricMeter:
        if self.averaging == "batch":
            return BatchMeanMeter(self.name, lambda: DepthMeter(self.name))
        return DepthMeter(self.name)

    def __repr__(self) -> str:
        return f"Depth(name={self.name!r}, inverse={self.inverse}, averaging={self.averaging!r})"
