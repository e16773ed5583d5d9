"""GradVac: raise each pair's gradient cosine to an EMA target by adding some of the other task's gradient."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, random_partner_orders
from taskbalance.method import RandomState


@AGGREGATIONS.register("gradvac")
class GradVac(RandomState, GramAggregation):
    """GradVac: for each task i, ``g_i' = g_i``; for j in a random order, with ``φ = cos(g_i', g_j)`` and target
    ``φ̂_ij``: if ``φ < φ̂_ij``, ``g_i' ← g_i' + |g_i'|(φ̂_ij√(1−φ²) − φ√(1−φ̂_ij²)) / (|g_j|√(1−φ̂_ij²))·g_j``; then
    ``φ̂_ij ← (1−β)φ̂_ij + βφ``. The direction is ``Σ_i g_i'``.

    Wang, Tsvetkov, Firat & Cao 2021, "Gradient Vaccine: Investigating and Improving Multi-task Optimization in
    Massively Multilingual Models" (ICLR), Algorithm 1. The added multiple of ``g_j`` is the one that makes the
    cosine of ``g_i'`` with ``g_j`` exactly ``φ̂_ij``; with every target at 0 (the start) this is PCGrad's projection,
    so the first step equals :class:`~taskbalance.aggregation.PCGrad` with the same seed. The targets are an EMA of
    the observed cosines, updated for every pair at every step, as in the paper (LibMTL updates a target only when
    the correction was applied). The whole shared part is one block (the paper also applies it per layer).

    Every ``g_i'`` stays a combination ``Σ_j C_ij g_j``, so everything runs on the K×K Gram matrix
    (``g_i'·g_j = (CG)_ij``, ``|g_i'|² = (CGCᵀ)_ii``) and ``last_weights`` is the column sum of C. The targets
    ``φ̂`` (a ``K×K`` buffer ``targets``) and the random generator are in ``state_dict``, so a resumed run continues
    identically. β = 0.01 is the value reimplementations of the paper's experiments give as its own (we have not
    found it in the paper's text); LibMTL's and torchjd's defaults are 0.5. Tune it where it matters.

    Degenerate inputs raise a ``ValueError`` naming the method, with ``validate=True`` (one host sync): a zero or
    non-finite task gradient (no cosine), and a correction that cannot reach its target (a target of 1, which needs
    an infinite amount). A ``g_i'`` cancelled to zero by an exactly opposite ``g_j`` stays zero (the added amount is
    proportional to ``|g_i'|``) and its targets with the later partners are left unchanged (no cosine to average);
    likewise, with ``validate=False``, a pair whose partner ``g_j`` is zero gets no correction and keeps its target.

    Example:
        >>> import torch
        >>> method = GradVac(2)
        >>> method.coefficients(torch.tensor([[1.0, -1.0], [-1.0, 4.0]]))  # targets 0: PCGrad's projection
        tensor([2.0000, 1.2500])
        >>> method.targets  # (1 − β)·0 + β·cos(g_0, g_1), cos = −1/2
        tensor([[ 0.0000, -0.0050],
                [-0.0050,  0.0000]])
    """

    formula = "g_i' += |g_i'|(φ̂√(1−φ²) − φ√(1−φ̂²))/(|g_j|√(1−φ̂²))·g_j if φ < φ̂; φ̂ ← (1−β)φ̂ + βφ; d = Σ g_i'"
    paper = "Wang et al., ICLR 2021"
    hyperparameters: ClassVar[dict[str, str]] = {
        "beta": "EMA rate β of the target cosines (default 0.01)",
        "seed": "seed of the generator of the pair orders (default 0)",
    }

    targets: Tensor

    def __init__(self, num_tasks: int, *, beta: float = 0.01, seed: int = 0, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta <= 1:
            raise ValueError(f"GradVac: beta must be a number in (0, 1], got {beta!r}")
        self.beta = float(beta)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.register_buffer("targets", torch.zeros(num_tasks, num_tasks))

    def coefficients(self, gram: Tensor) -> Tensor:
        return self.vaccinated(gram).sum(dim=0).to(gram.dtype)

    def vaccinated(self, gram: Tensor) -> Tensor:
        """C (``K×K``) with ``g_i' = Σ_j C_ij g_j``; updates the targets (one step of the method)."""
        if self.validate:
            check_task_gradients(self, torch.diagonal(gram), "GradVac compares the cosines of the task gradients")
        num_tasks = gram.shape[0]
        orders = random_partner_orders(num_tasks, self.generator, gram.device)
        matrix = gram.to(torch.float64)
        norms = torch.diagonal(matrix).sqrt()
        targets = self.targets.to(device=gram.device, dtype=torch.float64).clone()
        mix = torch.eye(num_tasks, dtype=torch.float64, device=gram.device)
        rows = torch.arange(num_tasks, device=gram.device)
        unreachable = torch.zeros(num_tasks, num_tasks, dtype=torch.bool, device=gram.device)
        for step in range(num_tasks - 1):
            partner = orders[:, step]
            products = mix @ matrix
            own_norms = (products * mix).sum(dim=1).clamp_min(0.0).sqrt()  # |g_i'|
            # g_i' cancelled to 0 by an exactly opposite g_j has no cosine; the added amount (∝ |g_i'|) is then 0.
            # Nor has a pair with a zero partner g_j (only without validate): 0/0 would make its target NaN for good.
            cancelled = (own_norms == 0) | (norms[partner] == 0)
            denominators = own_norms * norms[partner]
            denominators = torch.where(cancelled, torch.ones_like(denominators), denominators)
            # Rounding can push a cosine of (anti)parallel gradients just past ±1.
            cosines = (products[rows, partner] / denominators).clamp(-1.0, 1.0)
            target = targets[rows, partner]
            below = (cosines < target) & ~cancelled
            room = (1 - target.square()).clamp_min(0.0).sqrt()
            amount = own_norms * (target * (1 - cosines.square()).sqrt() - cosines * room) / (norms[partner] * room)
            reachable = torch.isfinite(amount)
            unreachable[rows, partner] = below & ~reachable
            mix[rows, partner] += torch.where(below & reachable, amount, torch.zeros_like(amount))
            updated = (1 - self.beta) * target + self.beta * cosines
            targets[rows, partner] = torch.where(cancelled, target, updated)
        if self.validate and bool(unreachable.any()):
            i, j = (int(index) for index in unreachable.nonzero()[0])
            raise ValueError(
                f"GradVac: the cosine of the gradient of {self.task_label(i)} with that of {self.task_label(j)} is "
                f"below its target {float(self.targets[i, j]):.6g}, which no added amount reaches (a target of 1)"
            )
        self.targets = targets.to(self.targets.dtype)
        return mix

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}, seed={self.seed}"
