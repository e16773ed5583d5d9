"""GLS: the geometric mean of the task losses (Chennupati et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("gls")
class GLS(LossWeighting):
    """Geometric loss strategy: ``total = (Π_k L_k)^(1/K) = GM``.

    Chennupati et al., "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss Strategy for Multi-Task
    Learning", CVPR Workshops 2019. Its gradient is ``(GM/K)·Σ_k ∇L_k / L_k``, i.e. a weighted sum with effective
    weights ``ω_k = (GM/K)/L_k``; ``last_weights`` is that ω. GM is computed in log space
    (``exp(mean_k log L_k)``), so a product of many small or large losses cannot under- or overflow. It is
    implemented as ``Σ_k sg[ω_k]·L_k``, which has the same value (``Σ_k GM/K = GM``) and the same gradient as GM
    itself, and lets ``sync_across_ranks`` share ω between ranks. Every loss must be finite and > 0.

    Example:
        >>> import torch
        >>> method = GLS(2)
        >>> method(torch.tensor([1.0, 4.0]))
        tensor(2.)
        >>> method.last_weights  # (2/2)/[1, 4]
        tensor([1.0000, 0.2500])
    """

    formula = "(Π_k L_k)^(1/K), in log space"
    paper = "Chennupati et al., CVPR Workshops 2019 (MultiNet++)"
    requires_positive_losses = True

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        log_values = torch.log(values)
        # ω_k = (GM/K)/L_k = exp(mean(log L) − log L_k) / K, all in log space.
        weights = torch.exp(log_values.mean() - log_values) / self.num_tasks
        return (weights * losses).sum(), weights
