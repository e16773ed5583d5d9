"""UPGrad: the mean of the task gradients each projected onto the dual cone of all of them."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, dual_cone_coefficients


@AGGREGATIONS.register("upgrad")
class UPGrad(GramAggregation):
    """UPGrad: ``d = (1/K) Σ_i π(g_i)``, ``π`` = projection onto the dual cone ``{x: g_k·x ≥ 0 ∀k}``.

    Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization" (arXiv 2406.16232). In Gram form
    ``π(g_i) = Jᵀv_i`` with ``v_i = argmin_{v ≥ e_i} vᵀGv``, solved per task exactly with SciPy's NNLS (one host copy
    of K×K numbers; see :func:`~taskbalance.aggregation.solvers.dual_cone_coefficients`). The direction conflicts with
    no task: ``g_k·d ≥ 0`` for every k. ``last_weights`` is ``(1/K)Σ_i v_i``.

    Example:
        >>> import torch
        >>> UPGrad(2).coefficients(torch.tensor([[1.0, -1.0], [-1.0, 4.0]]))
        tensor([1.0000, 0.6250])
    """

    formula = "d = (1/K) Σ_i Jᵀ argmin_{v ≥ e_i} vᵀGv"
    paper = "Quinton & Rey, arXiv 2406.16232 (2024)"

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        return dual_cone_coefficients(gram).mean(dim=0)
