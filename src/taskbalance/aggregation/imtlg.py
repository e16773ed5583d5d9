"""IMTL-G: the combination of task gradients with equal projections on every unit task gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients


@AGGREGATIONS.register("imtlg")
class IMTLG(GramAggregation):
    """IMTL-G: ``d = Σ_k α_k g_k`` with ``Σ_k α_k = 1`` and ``d·u_1 = … = d·u_K``, ``u_k = g_k/|g_k|``.

    Liu et al. 2021, "Towards Impartial Multi-task Learning" (ICLR), gradient part of IMTL (the loss part, IMTL-L,
    is :class:`taskbalance.weighting.IMTLL`; compose them with ``IMTLG(K, weighting=IMTLL(K))``). The paper's closed
    form ``α_{2:K} = g_1 Uᵀ(DUᵀ)⁻¹`` is solved here as the equivalent linear system on the Gram matrix
    (``d·u_i = (Gα)_i/|g_i|``): every projection equals their mean, and ``Σ α = 1``, solved with a pseudo-inverse
    in float64. All in torch, no host sync (besides the optional check of non-finite gradients).

    Edge cases:

    - a task whose gradient is exactly zero has no direction ``u_k`` to be impartial to: it gets ``α_k = 0`` and the
      other tasks are equalised among themselves (the paper's formula would force ``d·u = 0`` for every task, i.e.
      a zero update). All gradients zero give α = 0.
    - exactly parallel gradients (``g_j = λ g_i``, λ > 0) have the same ``u`` and so equal projections for every
      α: the system is underdetermined and the pseudo-inverse returns its minimum-norm solution, equal weights
      among them (e.g. ``α = (½, ½)`` for ``g_2 = 2g_1``). Anti-parallel gradients have no solution with
      ``Σ α = 1`` other than in the least-squares sense; a pair with ``g_2 = −g_1`` gets ``d = 0``.

    Example:
        >>> import torch
        >>> IMTLG(2).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
        tensor([0.6667, 0.3333])
        >>> IMTLG(3).coefficients(torch.diag(torch.tensor([1.0, 0.0, 4.0])))  # task 1's gradient is zero
        tensor([0.6667, 0.0000, 0.3333])
    """

    formula = "d = Σ_k α_k g_k, Σ α_k = 1, d·g_k/|g_k| equal for all k (α_k = 0 where g_k = 0)"
    paper = "Liu et al., ICLR 2021"

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        num_tasks = gram.shape[0]
        matrix = gram.to(torch.float64)
        norms = torch.diagonal(matrix).clamp_min(0.0).sqrt()
        nonzero = norms > 0
        inverse_norms = torch.where(nonzero, norms.reciprocal(), torch.zeros_like(norms))
        projections = inverse_norms[:, None] * matrix  # row i: α ↦ d·u_i
        counted = nonzero.to(matrix.dtype)
        mean_projection = (counted @ projections) / counted.sum().clamp_min(1.0)
        identity = torch.eye(num_tasks, dtype=matrix.dtype, device=matrix.device)
        # Row i: d·u_i − mean_j d·u_j = 0 for a non-zero gradient, α_i = 0 for a zero one; last row: Σ α = 1.
        rows = torch.where(nonzero[:, None], projections - mean_projection, identity)
        system = torch.cat([rows, torch.ones(1, num_tasks, dtype=matrix.dtype, device=matrix.device)])
        right = torch.zeros(num_tasks + 1, dtype=matrix.dtype, device=matrix.device)
        right[-1] = 1.0
        alpha = torch.linalg.pinv(system) @ right
        return (alpha * counted).to(gram.dtype)  # exact zeros, not pseudo-inverse rounding, for zero gradients
