"""How a dense task's metrics are averaged over a split: over its pixels (the default) or over its batches.

``"split"``: every valid pixel of the split counts once (LibMTL's convention, so the value does not depend on the
evaluation batch size). ``"batch"``: each evaluation batch's metrics are computed over its own pixels and the
batches' values are averaged without weights — the convention of MTAN's, Nash-MTL's and FAMO's trainers, whose
published NYUv2 and Cityscapes numbers were measured so (with test batches of 2 images on NYUv2), the median angle
included (a mean of per-batch medians). For the means and the within-threshold shares the two agree whenever every
batch has the same number of valid pixels; the median also needs the batches' error distributions to be alike.
"batch" values depend on the evaluation batch size (``eval_batch_size``). Segmentation is scored from one
confusion matrix either way (MTAN's code does so since 2020; its 2019 paper's mIoU was a mean over images).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from torch import Tensor

from taskbalance.tasks.base import MetricMeter

AVERAGING = ("split", "batch")


def check_averaging(averaging: object, owner: str) -> str:
    """``averaging`` if it is one of :data:`AVERAGING`, else a ``ValueError`` naming ``owner``.

    Example:
        >>> check_averaging("batch", "task 'depth'")
        'batch'
    """
    if averaging not in AVERAGING:
        raise ValueError(f"{owner}: averaging must be one of {', '.join(map(repr, AVERAGING))}, got {averaging!r}")
    return str(averaging)


class BatchMeanMeter(MetricMeter):
    """The unweighted mean over evaluation batches of each batch's metrics, each batch scored by a fresh split meter.

    A batch without a valid pixel has no metrics and is left out of the mean (its split meter refuses to compute).

    Example:
        >>> import torch
        >>> from taskbalance.tasks.depth import DepthMeter
        >>> meter = BatchMeanMeter("depth", lambda: DepthMeter("depth"))
        >>> meter.update(torch.ones(1, 1, 1, 4), torch.full((1, 1, 1, 4), 2.0))  # 4 pixels, error 1 each
        >>> meter.update(torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 4.0))  # 1 pixel, error 3
        >>> meter.compute()  # pixel-weighted over the split it would be abs_err 7/5 = 1.4
        {'abs_err': 2.0, 'rel_err': 0.625}
    """

    def __init__(self, task: str, split_meter: Callable[[], MetricMeter]) -> None:
        self.task = task
        self.split_meter = split_meter
        self._batches: list[dict[str, float]] = []

    def update(self, prediction: Tensor, target: Tensor) -> None:
        meter = self.split_meter()
        meter.update(prediction, target)
        try:
            self._batches.append(meter.compute())
        except ValueError:  # no valid pixel in this batch: nothing to average
            pass

    def compute(self) -> dict[str, float]:
        if not self._batches:
            raise ValueError(f"task {self.task!r}: no batch with a valid pixel was added; its metrics are undefined")
        return {metric: statistics.fmean(batch[metric] for batch in self._batches) for metric in self._batches[0]}
