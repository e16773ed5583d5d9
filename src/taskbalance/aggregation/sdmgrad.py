"""SDMGrad: MGDA's min-norm direction, regularised towards the mean gradient."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.cagrad import REDUCTIONS
from taskbalance.aggregation.clipping import ClipsSharedGradient, check_max_norm
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, min_norm_coefficients


@AGGREGATIONS.register("sdmgrad")
class SDMGrad(ClipsSharedGradient, GramAggregation):
    """SDMGrad: ``w = argmin_{w ∈ Δ_K} ½|g_w + λg₀|²``, ``d = K·(g_w + λg₀)/(1 + λ)`` (``g_w = Σ_k w_k g_k``,
    ``g₀ = (1/K)Σ_k g_k``), then the shared gradient clipped to norm ``max_norm``.

    Xiao, Ban & Ji 2023, "Direction-oriented Multi-objective Learning: Simple and Provable Stochastic Algorithms"
    (NeurIPS), the direction-oriented MGDA subproblem: λ = 0 is MGDA, and as λ → ∞ the direction tends to the mean
    gradient g₀. The paper's SDMGrad solves it by projected SGD on independent mini-batches; here it is solved
    exactly on one batch's Gram matrix: ``(g_w + λg₀)/(1 + λ) = Σ_k w_k h_k`` with ``h_k = (g_k + λg₀)/(1 + λ)``,
    so ``w`` is MGDA's min-norm point of the ``h_k`` (Gram ``MGM``, ``M = (I + (λ/K)11ᵀ)/(1 + λ)``), computed by
    :func:`~taskbalance.aggregation.solvers.min_norm_coefficients`. With ``reduction="mean"``, ``rescale`` and
    ``max_norm=0``, ``last_weights`` is ``(w + λ/K)/(1 + λ)``, a convex combination (the scale of the *mean* task
    gradient).

    Normalisation, as in the authors' code (``OptMN-Lab/sdmgrad``, ``methods/weight_methods.py``): the paper's
    update is ``g_w + λg₀``; the code divides it by ``1 + λ`` (and rescales the Gram matrix by the mean gradient
    norm, which only changes the step of its inner SGD solver, not the solution), multiplies it by K ("to match the
    sum loss") and clips the shared parameters' gradient to total norm ``max_norm`` (1.0, its experiments'
    default). ``rescale=True``, ``reduction="sum"`` and ``max_norm=1.0`` (the defaults) follow the code;
    ``rescale=False`` is the paper's ``g_w + λg₀``, ``reduction="mean"`` leaves out the × K and ``max_norm=0`` the
    clip. The clip is Nash-MTL's: after the step
    (:func:`~taskbalance.aggregation.clipping.clip_shared_gradients`, no host sync), in representation mode on the
    shared parameters' gradients after the encoder backward; ``last_weights`` includes the clip factor
    ``min(1, max_norm / |d|)``, so ``d = Σ_k last_weights_k ∇L_k`` holds for the applied direction. λ = 0.3 is the
    authors' choice for NYUv2 and Cityscapes.

    Example:
        >>> import torch
        >>> gram = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
        >>> SDMGrad(2, lamda=0.0, reduction="mean").coefficients(gram)  # MGDA
        tensor([0.8000, 0.2000])
        >>> SDMGrad(2, lamda=1.0, reduction="mean").coefficients(gram)
        tensor([0.7500, 0.2500])
        >>> SDMGrad(2, lamda=1.0).coefficients(gram)  # × K; step() then clips |d| to max_norm = 1
        tensor([1.5000, 0.5000])
    """

    formula = "d = K·(g_w + λg₀)/(1 + λ), w = argmin_{w ∈ Δ} |g_w + λg₀|², g₀ = mean gradient; clipped to max_norm"
    paper = "Xiao, Ban & Ji, NeurIPS 2023"
    hyperparameters: ClassVar[dict[str, str]] = {
        "lamda": "weight λ ≥ 0 of the mean gradient g₀ (default 0.3; 0 = MGDA, → ∞: the mean)",
        "rescale": "divide the direction by 1 + λ, the authors' code (default True); False: the paper's g_w + λg₀",
        "reduction": "'sum' (× K, the authors' code, default) or 'mean' (the scale of the mean gradient)",
        "max_norm": "clip the shared parameters' gradient norm to this after the step; 0 = off (default 1.0)",
    }
    # 1: the authors' × K and max_norm = 1 clipping by default (was the unclipped convex combination).
    revision: ClassVar[int] = 1

    def __init__(
        self,
        num_tasks: int,
        *,
        lamda: float = 0.3,
        rescale: bool = True,
        reduction: Literal["mean", "sum"] = "sum",
        max_norm: float = 1.0,
        **common: Any,
    ) -> None:
        super().__init__(num_tasks, **common)
        if isinstance(lamda, bool) or not isinstance(lamda, int | float) or not 0 <= lamda < math.inf:
            raise ValueError(f"SDMGrad: lamda must be a finite number >= 0, got {lamda!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"SDMGrad: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.lamda = float(lamda)
        self.rescale = bool(rescale)
        self.reduction: Literal["mean", "sum"] = reduction
        self.max_norm = check_max_norm("SDMGrad", max_norm)

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
        if self.reduction == "sum":
            coefficients = coefficients * num_tasks
        return coefficients.to(gram.dtype)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, lamda={self.lamda}, rescale={self.rescale}, reduction={self.reduction!r}, "
            f"max_norm={self.max_norm}"
        )
