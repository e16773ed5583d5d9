"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, random_partner_orders
from taskbalance.method import RandomState


@AGGREGATIONS.register("pcgrad")
class PCGrad(RandomState, GramAggregation):
    """PCGrad: for each task i, ``g_i' = g_i``; for j in a random order: if ``g_i'·g_j < 0``,
    ``g_i' ← g_i' − (g_i'·g_j / |g_j|²)·g_j``; the direction is ``Σ_i g_i'``.

    Yu et al. 2020, "Gradient Surgery for Multi-Task Learning" (NeurIPS), Algorithm 1. Every ``g_i'`` stays a
    combination ``Σ_j C_ij g_j`` of the original gradients, so the projections run on the K×K Gram matrix
    (``g_i'·g_j = (CG)_ij``) without touching the gradients, and ``last_weights`` is the column sum of C (the weight
    of each raw gradient in the direction). The conflict test is branch-free (``min(0, ·)``), no host sync. The
    random orders come from a ``torch.Generator`` seeded by ``seed``. For K = 2 the direction conflicts with neither
    gradient.

    Example:
        >>> import torch
        >>> method = PCGrad(2)
        >>> method.coefficients(torch.tensor([[1.0, -1.0], [-1.0, 4.0]]))
        tensor([2.0000, 1.2500])
    """

    formula = "g_i' = g_i − Σ_j min(0, g_i'·g_j)/|g_j|²·g_j (random order); d = Σ_i g_i'"
    paper = "Yu et al., NeurIPS 2020"
    hyperparameters: ClassVar[dict[str, str]] = {
        "seed": "seed of the generator of the projection orders (default 0)",
    }

    def __init__(self, num_tasks: int, *, seed: int = 0, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        num_tasks = gram.shape[0]
        # orders[i] = the other tasks in the random order task i is projected on them.
        orders = random_partner_orders(num_tasks, self.generator, gram.device)
        squared_norms = torch.diagonal(gram)
        safe_norms = torch.where(squared_norms > 0, squared_norms, torch.ones_like(squared_norms))
        mix = torch.eye(num_tasks, dtype=gram.dtype, device=gram.device)
        rows = torch.arange(num_tasks, device=gram.device)
        for step in range(num_tasks - 1):
            partner = orders[:, step]
            dots = (mix @ gram)[rows, partner]  # g_i'·g_{partner(i)}
            factor = torch.where(squared_norms[partner] > 0, dots.clamp(max=0.0) / safe_norms[partner], 0.0)
            mix[rows, partner] -= factor
        return mix.sum(dim=0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, seed={self.seed}"
