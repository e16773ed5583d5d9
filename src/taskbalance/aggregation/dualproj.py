"""DualProj: the mean task gradient projected onto the dual cone of all task gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, dual_cone_projection


@AGGREGATIONS.register("dualproj")
class DualProj(GramAggregation):
    """DualProj: ``d = π((1/K) Σ_k g_k)``, ``π`` = Euclidean projection onto the dual cone ``{x: g_k·x ≥ 0 ∀k}``.

    The aggregator "DualProj" of Quinton & Rey 2024 ("Jacobian Descent for Multi-Objective Optimization", arXiv
    2406.16232): where UPGrad projects each task gradient and averages the projections, DualProj projects only their
    mean. In Gram form ``d = Jᵀv`` with ``v = argmin_{v ≥ 1/K} vᵀGv`` — one non-negative least-squares problem
    (SciPy's exact NNLS on the K×K Gram matrix, one host copy; see
    :func:`~taskbalance.aggregation.solvers.dual_cone_projection`), against UPGrad's K. Its optimality conditions
    give the defining properties: ``g_k·d ≥ 0`` for every task (no conflict), and ``d`` is the mean itself when the
    mean conflicts with no task. Scale convention: the mean (1/K) of the task gradients; ``last_weights`` is ``v``
    (each ≥ 1/K). No hyper-parameters and no state.

    Example:
        >>> import torch
        >>> # g1 = (1, 0), g2 = (-1, 2): the mean (0, 1) conflicts with neither task and is kept.
        >>> DualProj(2).coefficients(torch.tensor([[1.0, -1.0], [-1.0, 5.0]]))
        tensor([0.5000, 0.5000])
        >>> # g1 = (1, 0), g2 = (-3, 1): the mean (-1, 0.5) conflicts with g1; its projection (0, 0.5) does not.
        >>> DualProj(2).coefficients(torch.tensor([[1.0, -3.0], [-3.0, 10.0]]))
        tensor([1.5000, 0.5000])
    """

    formula = "d = Jᵀ argmin_{v ≥ 1/K} vᵀGv"
    paper = "Quinton & Rey, arXiv 2406.16232 (2024)"

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        if not bool(torch.isfinite(gram).all()):  # finite norms but overflowing products
            raise ValueError(f"DualProj: the Gram matrix of the task gradients is not finite: {gram.tolist()}")
        mean = torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=gram.dtype, device=gram.device)
        return dual_cone_projection(gram, mean)
