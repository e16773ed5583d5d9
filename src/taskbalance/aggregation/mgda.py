"""MGDA and MGDA-UB: the min-norm point of the convex hull of the task gradients."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation, Mode
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, min_norm_coefficients


@AGGREGATIONS.register("mgda")
class MGDA(GramAggregation):
    """MGDA: ``d = Σ_k c_k g_k`` with ``c = argmin_{c ∈ Δ_K} |Σ_k c_k g_k|²`` (Δ_K = probability simplex).

    Désidéri 2012 ("Multiple-gradient descent algorithm for multiobjective optimization"); for deep MTL Sener &
    Koltun 2018 ("Multi-Task Learning as Multi-Objective Optimization", NeurIPS). ``d`` is a common descent
    direction of all tasks (``g_k·d ≥ |d|²``) or zero at a Pareto-stationary point. K = 2 is solved in closed form,
    K ≥ 3 exactly by non-negative least squares on the Gram matrix (SciPy, one host copy of K×K numbers); see
    :func:`~taskbalance.aggregation.solvers.min_norm_coefficients`. No gradient normalisation is applied (compose
    with a weighting such as UW-O to rescale the tasks). ``last_weights`` is ``c`` (times the weighting's scales).

    Example:
        >>> import torch
        >>> method = MGDA(2)
        >>> method.coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
        tensor([0.8000, 0.2000])
    """

    formula = "d = argmin_{d ∈ conv{g_k}} |d|"
    paper = "Sener & Koltun, NeurIPS 2018 (MGDA of Désidéri 2012)"

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        return min_norm_coefficients(gram)


@AGGREGATIONS.register("mgda_ub")
class MGDAUB(MGDA):
    """MGDA-UB: MGDA on the gradients w.r.t. the shared representation Z, then one backward through the encoder.

    Sener & Koltun 2018 optimise the upper bound ``|∂Z/∂θ|·|Σ_k c_k ∇_Z L_k|`` instead of ``|Σ_k c_k ∇_θ L_k|``; this
    is :class:`MGDA` with ``mode="representation"`` as default.

    Example:
        >>> MGDAUB(3).mode
        'representation'
    """

    formula = "d_Z = argmin_{d ∈ conv{∇_Z L_k}} |d|; ∇_θ = (∂Z/∂θ)ᵀ d_Z"
    default_mode: ClassVar[Mode] = "representation"
