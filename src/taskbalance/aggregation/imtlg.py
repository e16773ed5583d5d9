"""IMTL-G: the combination of task gradients with equal projections on every unit task gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS


@AGGREGATIONS.register("imtlg")
class IMTLG(GramAggregation):
    """IMTL-G: ``d = Σ_k α_k g_k`` with ``Σ_k α_k = 1`` and ``d·u_1 = … = d·u_K``, ``u_k = g_k/|g_k|``.

    Liu et al. 2021, "Towards Impartial Multi-task Learning" (ICLR), gradient part of IMTL (the loss part, IMTL-L,
    is :class:`taskbalance.weighting.IMTLL`; compose them with ``IMTLG(K, weighting=IMTLL(K))``). The paper's closed
    form ``α_{2:K} = g_1 Uᵀ(DUᵀ)⁻¹`` is solved here as the equivalent K×K linear system on the Gram matrix
    (``d·u_i = (Gα)_i/|g_i|``) with a pseudo-inverse, so linearly dependent gradients give the least-squares
    solution instead of an error. A zero gradient contributes ``u_k = 0``. All in torch, no host sync.

    Example:
        >>> import torch
        >>> IMTLG(2).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
        tensor([0.6667, 0.3333])
    """

    formula = "d = Σ_k α_k g_k, Σ α_k = 1, d·g_k/|g_k| equal for all k"
    paper = "Liu et al., ICLR 2021"

    def coefficients(self, gram: Tensor) -> Tensor:
        num_tasks = gram.shape[0]
        matrix = gram.to(torch.float64)
        norms = torch.diagonal(matrix).clamp_min(0.0).sqrt()
        inverse_norms = torch.where(norms > 0, norms.reciprocal(), torch.zeros_like(norms))
        projections = inverse_norms[:, None] * matrix  # row i: α ↦ d·u_i
        system = torch.cat([projections[:-1] - projections[-1:], torch.ones(1, num_tasks, dtype=matrix.dtype)])
        right = torch.zeros(num_tasks, dtype=matrix.dtype)
        right[-1] = 1.0
        return (torch.linalg.pinv(system) @ right).to(gram.dtype)
