"""SDMGrad: MGDA's min-norm direction, regularised towards the mean gradient."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, min_norm_coefficients


@AGGREGATIONS.register("sdmgrad")
class SDMGrad(GramAggregation):
    """SDMGrad: ``w = argmin_{w ∈ Δ_K} ½|g_w + λg₀|²``, ``d = (g_w + λg₀)/(1 + λ)`` (``g_w = Σ_k w_k g_k``,
    ``g₀ = (1/K)Σ_k g_k``).

    Xiao, Ban & Ji 2023, "Direction-oriented Multi-objective Learning: Simple and Provable Stochastic Algorithms"
    (NeurIPS), the direction-oriented MGDA subproblem: λ = 0 is MGDA, and as λ → ∞ the direction tends to the mean
    gradient g₀. The paper's SDMGrad solves it by projected SGD on independent mini-batches; here it is solved
    exactly on one batch's Gram matrix: ``(g_w + λg₀)/(1 + λ) = Σ_k w_k h_k`` with ``h_k = (g_k + λg₀)/(1 + λ)``,
    so ``w`` is MGDA's min-norm point of the ``h_k`` (Gram ``MGM``, ``M = (I + (λ/K)11ᵀ)/(1 + λ)``), computed by
    :func:`~taskbalance.aggregation.solvers.min_norm_coefficients`. ``last_weights`` is ``(w + λ/K)/(1 + λ)``, a
    convex combination (the scale of the *mean* task gradient).

    Normalisation: the paper's update is ``g_w + λg₀``; the authors' code divides it by ``1 + λ`` (and rescales the
    Gram matrix by the mean gradient norm, which only changes the step of its inner SGD solver, not the solution).
    ``rescale=True`` (default) follows the code, so λ changes the direction but not the scale; ``rescale=False`` is
    the paper's ``g_w + λg₀``. λ = 0.3 is the authors' choice for NYUv2 and Cityscapes.

    Example:
        >>> import torch
        >>> SDMGrad(2, lamda=0.0).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))  # MGDA
        tensor([0.8000, 0.2000])
        >>> SDMGrad(2, lamda=1.0).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
        tensor([0.7500, 0.2500])
    """

    formula = "d = (g_w + λg₀)/(1 + λ), w = argmin_{w ∈ Δ} |g_w + λg₀|², g₀ = mean gradient"
    paper = "Xiao, Ban & Ji, NeurIPS 2023"
    hyperparameters: ClassVar[dict[str, str]] = {
        "lamda": "weight λ ≥ 0 of the mean gradient g₀ (default 0.3; 0 = MGDA, → ∞: the mean)",
        "rescale": "divide the direction by 1 + λ, the authors' code (default True); False: the paper's g_w + λg₀",
    }

    def __init__(self, num_tasks: int, *, lamda: float = 0.3, rescale: bool = True, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if isinstance(lamda, bool) or not isinstance(lamda, int | float) or not 0 <= lamda < math.inf:
            raise ValueError(f"SDMGrad: lamda must be a finite number >= 0, got {lamda!r}")
        self.lamda = float(lamda)
        self.rescale = bool(rescale)

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        num_tasks = gram.shape[0]
        matrix = gram.to(torch.float64)
        share = self.lamda / num_tasks
        mix = (torch.eye(num_tasks, dtype=torch.float64, device=gram.device) + share) / (1 + self.lamda)
        weights = min_norm_coefficients(mix @ matrix @ mix)  # mix is symmetric: Gram of h_k = Σ_j mix_kj g_j
        coefficients = (weights + share) / (1 + self.lamda)
        if not self.rescale:
            coefficients = coefficients * (1 + self.lamda)
        return coefficients.to(gram.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lamda={self.lamda}, rescale={self.rescale}"
