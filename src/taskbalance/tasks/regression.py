"""Regression of a vector or a dense map: L1 or MSE loss; MAE and RMSE over a split."""

from __future__ import annotations

import math

from torch import Tensor

from taskbalance.tasks._checks import require_floating_prediction, require_positive_int, shape_mismatch
from taskbalance.tasks.base import MetricMeter, Task
from taskbalance.tasks.registry import TASKS
from taskbalance.types import HeadSpec, MetricSpec

LOSSES = ("l1", "mse")


def _as_pair(task: str, out_channels: int, dense: bool, prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Prediction and target of equal shape ``[B, C]`` (or ``[B, C, H, W]`` when dense).

    With one output channel the target may omit the channel axis (``[B]``, or ``[B, H, W]`` when dense).
    """
    require_floating_prediction(task, prediction)
    rank = 4 if dense else 2
    expected = "[B, C, H, W]" if dense else "[B, C]"
    shaped = target.unsqueeze(1) if out_channels == 1 and target.dim() == rank - 1 else target
    if prediction.dim() != rank or prediction.shape[1] != out_channels or shaped.shape != prediction.shape:
        raise shape_mismatch(
            task, prediction, target, f"prediction and target both {expected} with C = {out_channels}"
        )
    return prediction, shaped.to(prediction.dtype)


class RegressionMeter(MetricMeter):
    """Mean absolute and root mean squared error over every element (sample × channel × pixel) of a split.

    ``mae = (1/N) Σ |p − t|``, ``rmse = sqrt((1/N) Σ (p − t)²)``, with float64 sums and N the number of elements.
    """

    def __init__(self, task: str, out_channels: int, dense: bool) -> None:
        self.task = task
        self.out_channels = out_channels
        self.dense = dense
        self._abs_sum = 0.0
        self._square_sum = 0.0
        self._count = 0

    def update(self, prediction: Tensor, target: Tensor) -> None:
        prediction, target = _as_pair(self.task, self.out_channels, self.dense, prediction.detach(), target)
        error = prediction.double() - target.double()
        self._abs_sum += float(error.abs().sum())
        self._square_sum += float(error.square().sum())
        self._count += error.numel()

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            raise ValueError(f"task {self.task!r}: nothing was added; regression errors are undefined")
        return {"mae": self._abs_sum / self._count, "rmse": math.sqrt(self._square_sum / self._count)}


@TASKS.register("regression")
class Regression(Task):
    """Regression of ``out_channels`` values per sample, or of a dense ``out_channels``-channel map.

    Loss: ``"l1"`` → ``(1/N) Σ |p − t|``, ``"mse"`` → ``(1/N) Σ (p − t)²``, the mean over all N elements of the
    batch. Metrics (over the whole split, see :class:`RegressionMeter`): ``mae`` ↓ (main metric), ``rmse`` ↓.

    Args:
        name: the task's name.
        out_channels: values per sample (vector) or channels per pixel (dense).
        dense: whether prediction and target are maps ``[B, C, H, W]`` instead of vectors ``[B, C]``.
        size: for a dense task, the spatial size ``(H, W)`` the head must output (None: the input's size);
            the targets must have that size.
        loss: ``"l1"`` or ``"mse"``.

    Example:
        >>> import torch
        >>> task = Regression("age", loss="mse")
        >>> prediction, target = torch.tensor([[1.0], [4.0]]), torch.tensor([2.0, 2.0])
        >>> float(task.loss(prediction, target))  # (1 + 4) / 2
        2.5
        >>> meter = task.meter(); meter.update(prediction, target); meter.compute()["mae"]
        1.5
    """

    def __init__(
        self,
        name: str,
        out_channels: int = 1,
        dense: bool = False,
        size: tuple[int, int] | None = None,
        loss: str = "l1",
    ) -> None:
        super().__init__(name)
        owner = f"task {name!r}"
        self.out_channels = require_positive_int(owner, "out_channels", out_channels)
        if not isinstance(dense, bool):
            raise ValueError(f"{owner}: dense must be a bool, got {dense!r}")
        if size is not None:
            if not dense:
                raise ValueError(f"{owner}: size {size!r} is only meaningful for a dense task (dense=True)")
            if not isinstance(size, tuple | list) or len(size) != 2:
                raise ValueError(f"{owner}: size must be a pair (H, W) of positive integers, got {size!r}")
            size = (require_positive_int(owner, "size[0]", size[0]), require_positive_int(owner, "size[1]", size[1]))
        if loss not in LOSSES:
            raise ValueError(f"{owner}: loss must be one of {LOSSES}, got {loss!r}")
        self.dense = dense
        self.size = size
        self.loss_kind = loss

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(self.out_channels, dense=self.dense, size=self.size)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return (MetricSpec("mae", higher_is_better=False), MetricSpec("rmse", higher_is_better=False))

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        prediction, target = _as_pair(self.name, self.out_channels, self.dense, prediction, target)
        error = prediction - target
        return error.abs().mean() if self.loss_kind == "l1" else error.square().mean()

    def meter(self) -> RegressionMeter:
        return RegressionMeter(self.name, self.out_channels, self.dense)

    def __repr__(self) -> str:
        return (
            f"Regression(name={self.name!r}, out_channels={self.out_channels}, dense={self.dense}, "
            f"size={self.size}, loss={self.loss_kind!r})"
        )
