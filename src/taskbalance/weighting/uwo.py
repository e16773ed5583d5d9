"""UW-O: analytical uncertainty weighting without the softmax (Kirchdorfer et al. 2024)."""

from __future__ import annotations

from torch import Tensor

from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("uwo")
class UWO(LossWeighting):
    """UW-O: ``total = Σ_k L_k / sg[L_k]`` (``sg`` = stop-gradient, i.e. ``detach``).

    The analytical optimum of UW's log-variance (σ_k² ∝ L_k) applied directly: each task is weighted by the inverse of
    its current loss (Kirchdorfer et al. 2024, "Analytical Uncertainty-Based Loss Weighting in Multi-Task Learning",
    arXiv 2408.07985). The gradient equals that of ``Σ_k log L_k``, so rescaling any task's loss by a positive
    constant leaves the update unchanged. The total's value is always K. ``last_weights`` is ``1/L_k``.
    Every loss must be finite and > 0 (a zero loss raises instead of becoming a huge weight).

    Example:
        >>> import torch
        >>> method = UWO(2)
        >>> method(torch.tensor([0.5, 4.0]))
        tensor(2.)
        >>> method.last_weights
        tensor([2.0000, 0.2500])
    """

    formula = "Σ_k L_k / sg[L_k]"
    paper = "Kirchdorfer et al., arXiv 2408.07985 (2024)"
    requires_positive_losses = True

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        weights = values.reciprocal()
        return (weights * losses).sum(), weights
