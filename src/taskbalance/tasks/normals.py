"""Surface normal estimation: 1 − cos over valid pixels; angular error statistics over a split."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from taskbalance.tasks._checks import require_floating_prediction, shape_mismatch
from taskbalance.tasks.averaging import BatchMeanMeter, check_averaging
from taskbalance.tasks.base import MetricMeter, Task
from taskbalance.tasks.registry import TASKS
from taskbalance.types import HeadSpec, MetricSpec

#: Angular thresholds (degrees) of the "share of pixels within" metrics, with their metric names.
THRESHOLDS: tuple[tuple[str, float], ...] = (("within_11_25", 11.25), ("within_22_5", 22.5), ("within_30", 30.0))


def _check_pair(task: str, prediction: Tensor, target: Tensor) -> None:
    require_floating_prediction(task, prediction)
    if prediction.dim() != 4 or prediction.shape[1] != 3 or target.shape != prediction.shape:
        raise shape_mismatch(task, prediction, target, "prediction and target both [B, 3, H, W]")


def _cosines(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Cosine between the L2-normalised prediction and target at each pixel ``[B, H, W]``, and the valid mask.

    A pixel is valid where any target channel is nonzero. The target is normalised too: a no-op for the unit
    vectors datasets store, and it keeps cos within [−1, 1] when they are stored with rounding. A zero prediction
    stays zero after normalisation (cos 0, i.e. 90°) rather than dividing by zero.
    """
    valid = (target != 0).any(dim=1)
    cosine = (F.normalize(prediction, dim=1) * F.normalize(target.to(prediction.dtype), dim=1)).sum(dim=1)
    return cosine, valid


class NormalsMeter(MetricMeter):
    """Angular error statistics over every valid pixel of a split.

    The angle at a valid pixel is ``θ = arccos(clamp(n̂·n / (‖n̂‖‖n‖), −1, 1))`` in degrees, computed in float64
    (arccos is badly conditioned near 0°, where float32 cosines would quantise small angles).

    * ``mean_angle`` = mean θ, ``median_angle`` = median θ (the mean of the two middle values for an even count,
      as numpy's median);
    * ``within_11_25``, ``within_22_5``, ``within_30`` = fraction of valid pixels with θ < 11.25°, 22.5°, 30°
      (fractions in [0, 1]; papers print them as percentages — Δm is a ratio, so the scale does not change it).

    The median needs every angle. By default (``median_bin_degrees=None``) the meter keeps them all, as float32
    on the CPU (4 bytes per valid pixel, e.g. ≈290 MB for NYUv2's 654 test images at 288×384), and the median is
    exact up to float32 rounding of the angles (relative 6e-8, i.e. < 2e-5°). With ``median_bin_degrees = w`` it
    keeps a histogram of ⌈180/w⌉ int64 bins instead, and the median is the centre of the bin that holds the middle
    value(s): off by at most w/2 degrees (w = 1e-3 gives ≤ 5e-4°, far below the two decimals papers print, in
    1.4 MB). Mean and the within-shares are exact in both modes (float64 sum and int64 counts).
    """

    def __init__(self, task: str, median_bin_degrees: float | None = None) -> None:
        self.task = task
        self.median_bin_degrees = median_bin_degrees
        self._angle_sum = 0.0
        self._count = 0
        self._within = dict.fromkeys((name for name, _ in THRESHOLDS), 0)
        self._angles: list[Tensor] = []
        self._histogram: Tensor | None = None
        if median_bin_degrees is not None:
            self._bins = math.ceil(180.0 / median_bin_degrees)
            self._histogram = torch.zeros(self._bins, dtype=torch.long)

    def update(self, prediction: Tensor, target: Tensor) -> None:
        _check_pair(self.task, prediction, target)
        cosine, valid = _cosines(prediction.detach().double(), target)
        angles = torch.rad2deg(torch.arccos(cosine[valid].clamp(-1.0, 1.0)))
        self._angle_sum += float(angles.sum())
        self._count += angles.numel()
        for name, threshold in THRESHOLDS:
            self._within[name] += int((angles < threshold).sum())
        if self._histogram is None:
            self._angles.append(angles.float().cpu())
        else:
            assert self.median_bin_degrees is not None
            bins = (angles / self.median_bin_degrees).floor().long().clamp(0, self._bins - 1)
            self._histogram += torch.bincount(bins, minlength=self._bins).cpu()

    def _median(self) -> float:
        # 1-based ranks of the two middle values (equal for an odd count).
        low_rank, high_rank = (self._count + 1) // 2, self._count // 2 + 1
        if self._histogram is None:
            angles = torch.cat(self._angles)
            low = angles.kthvalue(low_rank).values.double()
            high = angles.kthvalue(high_rank).values.double()
            return float((low + high) / 2)
        assert self.median_bin_degrees is not None
        cumulative = self._histogram.cumsum(0)
        width = self.median_bin_degrees
        low_bin = int(torch.searchsorted(cumulative, torch.tensor(low_rank)))
        high_bin = int(torch.searchsorted(cumulative, torch.tensor(high_rank)))
        return ((low_bin + 0.5) * width + (high_bin + 0.5) * width) / 2

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            raise ValueError(f"task {self.task!r}: no valid pixel (target ≠ 0) was added; angle errors are undefined")
        result = {"mean_angle": self._angle_sum / self._count, "median_angle": self._median()}
        result.update({name: count / self._count for name, count in self._within.items()})
        return result


@TASKS.register("surfacenormals")
class SurfaceNormals(Task):
    """Per-pixel surface normals; pixels whose target is the zero vector carry no ground truth and are left out.

    Loss: ``L = (1/|V|) Σ_{p∈V} (1 − n̂_p·n_p / (‖n̂_p‖‖n_p‖))``, the mean of 1 − cos between the L2-normalised
    prediction and target over the valid pixels V (target ≠ 0 in any channel) of the batch (MTAN's normal loss, Liu
    et al. 2019, there written as −cos + 1). A batch without a valid pixel has loss 0 instead of 0/0 = NaN.

    Metrics (over the whole split, see :class:`NormalsMeter`): ``mean_angle`` ↓ (main metric), ``median_angle`` ↓
    (degrees), ``within_11_25`` ↑, ``within_22_5`` ↑, ``within_30`` ↑ (fractions in [0, 1]). ``averaging="batch"``
    averages each evaluation batch's values instead (the median too), as MTAN's and Nash-MTL's trainers
    (:mod:`taskbalance.tasks.averaging`).

    Args:
        name: the task's name.
        median_bin_degrees: ``None`` (default) for the exact median, which keeps every angle; a bin width in degrees
            to keep a histogram instead, with the median off by at most half a bin.
        averaging: ``"split"`` (default: every valid pixel of the split counts once) or ``"batch"``.

    Example:
        >>> import torch
        >>> task = SurfaceNormals("normal")
        >>> target = torch.tensor([0.0, 0.0, 1.0]).reshape(1, 3, 1, 1)
        >>> prediction = torch.tensor([0.0, 2.0, 2.0]).reshape(1, 3, 1, 1)  # 45° away, not unit length
        >>> round(float(task.loss(prediction, target)), 4)  # 1 − cos 45°
        0.2929
        >>> meter = task.meter(); meter.update(prediction, target)
        >>> {k: round(v, 4) for k, v in meter.compute().items()}
        {'mean_angle': 45.0, 'median_angle': 45.0, 'within_11_25': 0.0, 'within_22_5': 0.0, 'within_30': 0.0}
    """

    def __init__(self, name: str, median_bin_degrees: float | None = None, averaging: str = "split") -> None:
        super().__init__(name)
        self.averaging = check_averaging(averaging, f"task {name!r}")
        if median_bin_degrees is not None and (
            isinstance(median_bin_degrees, bool)
            or not isinstance(median_bin_degrees, int | float)
            or not 0 < median_bin_degrees <= 180
        ):
            raise ValueError(
                f"task {name!r}: median_bin_degrees must be None or a number in (0, 180], got {median_bin_degrees!r}"
            )
        self.median_bin_degrees = None if median_bin_degrees is None else float(median_bin_degrees)

    @property
    def head(self) -> HeadSpec:
        return HeadSpec(3, dense=True)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        lower = (MetricSpec("mean_angle", higher_is_better=False), MetricSpec("median_angle", higher_is_better=False))
        return lower + tuple(MetricSpec(name, higher_is_better=True) for name, _ in THRESHOLDS)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        _check_pair(self.name, prediction, target)
        cosine, valid = _cosines(prediction, target)
        one_minus_cos = torch.where(valid, 1 - cosine, torch.zeros_like(cosine))
        return one_minus_cos.sum() / valid.sum().clamp(min=1)

    def meter(self) -> MetricMeter:
        if self.averaging == "batch":
            return BatchMeanMeter(self.name, lambda: NormalsMeter(self.name, self.median_bin_degrees))
        return NormalsMeter(self.name, self.median_bin_degrees)

    def __repr__(self) -> str:
        return (f"SurfaceNormals(name={self.name!r}, median_bin_degrees={self.median_bin_degrees}, "
                f"averaging={self.averaging!r})")
