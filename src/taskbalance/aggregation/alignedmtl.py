"""Aligned-MTL: align the principal components of the gradient system, removing its ill-conditioning."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, rank_tolerance


@AGGREGATIONS.register("alignedmtl")
class AlignedMTL(GramAggregation):
    """Aligned-MTL: ``d = Jᵀ B 1`` with ``G = VΛVᵀ`` and ``B = √λ_min · V Λ^(−1/2) Vᵀ`` (over the non-zero spectrum).

    Senushkin et al. 2023, "Independent Component Alignment for Multi-Task Learning" (CVPR), Eq. 9–10: the aligned
    gradient matrix ``Ĝ = σ_min·U Vᵀ`` (``J = UΣVᵀ``) has condition number 1, and the update sums its rows (unit
    task weights). Eigenvalues below ``λ_max·K·eps`` count as zero (the rank), with ``eps`` of the Gram matrix's
    own dtype (float32's for float32 gradients: the eigendecomposition runs in float64, but the Gram matrix carries
    float32 rounding, and a rounding-noise eigenvalue taken as λ_min would shrink the step to almost nothing); λ_min
    is the smallest eigenvalue above it. Masks instead of slicing keep it free of host syncs.

    Example:
        >>> import torch
        >>> AlignedMTL(2).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
        tensor([1.0000, 0.5000])
    """

    formula = "d = Jᵀ·√λ_min·VΛ^(−1/2)Vᵀ·1, G = JJᵀ = VΛVᵀ"
    paper = "Senushkin et al., CVPR 2023"

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        matrix = gram.to(torch.float64)
        values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
        tolerance = values.max() * gram.shape[0] * rank_tolerance(gram.dtype)
        kept = values > tolerance
        safe = torch.where(kept, values, torch.ones_like(values))
        inverse_roots = torch.where(kept, safe.rsqrt(), torch.zeros_like(values))
        smallest = torch.where(kept, values, torch.full_like(values, torch.inf)).min()
        smallest = torch.where(torch.isfinite(smallest), smallest, torch.zeros_like(smallest))
        balance = smallest.sqrt() * (vectors * inverse_roots) @ vectors.T
        return balance.sum(dim=1).to(gram.dtype)
