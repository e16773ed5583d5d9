"""Equal weighting (EW): the plain sum of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("ew")
class EW(LossWeighting):
    """Equal weighting: ``total = Σ_k L_k``; ``last_weights`` is 1 for every task.

    The usual baseline (e.g. Kirchdorfer et al. 2024, arXiv 2408.07985, Table 1). Losses are only checked to be
    finite.

    Example:
        >>> import torch
        >>> EW(2)(torch.tensor([1.0, 2.0]))
        tensor(3.)
    """

    formula = "Σ_k L_k"
    paper = "equal weighting baseline"

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        return losses.sum(), torch.ones_like(values)
