"""Random loss weighting (RLW) of Lin et al. (2022)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.distributed import broadcast_from_first_rank
from taskbalance.method import RandomState
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("rlw")
class RLW(RandomState, LossWeighting):
    """RLW: ``total = Σ_k ω_k·L_k`` with ``ω = softmax(z)``, ``z ~ N(0, I)`` drawn afresh every call.

    Lin et al., "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022
    (the normal-softmax variant). ``last_weights`` is ω (sums to 1).

    ``z`` is drawn on the CPU from ``self.generator`` (a ``torch.Generator`` whose state is saved in
    ``state_dict``) and then moved to the losses' device, so the sequence of weights is the same on every device.
    With ``sync_across_ranks`` rank 0's weights are broadcast, so every rank uses the same ω even with different
    seeds.

    Args:
        num_tasks: K.
        generator: a CPU ``torch.Generator`` to draw from (shared, not copied).
        seed: seed for a new generator. Give at most one of ``generator`` / ``seed``; with neither, the seed is
            drawn from torch's global generator, so ``torch.manual_seed`` makes runs reproducible.

    Example:
        >>> import torch
        >>> a, b = RLW(3, seed=0), RLW(3, seed=0)
        >>> _ = a(torch.ones(3)); _ = b(torch.ones(3))
        >>> bool(torch.equal(a.last_weights, b.last_weights)), round(float(a.last_weights.sum()), 6)
        (True, 1.0)
    """

    formula = "Σ_k softmax(z)_k·L_k, z ~ N(0, I) each step"
    paper = "Lin et al., TMLR 2022"
    hyperparameters: ClassVar[dict[str, str]] = {"seed": "seed of the weight generator (default: from the global RNG)"}

    def __init__(
        self, num_tasks: int, generator: torch.Generator | None = None, seed: int | None = None, **common: Any
    ) -> None:
        super().__init__(num_tasks, **common)
        if generator is not None and seed is not None:
            raise ValueError("RLW: give either generator or seed, not both")
        if generator is None:
            if seed is None:
                seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator().manual_seed(int(seed))
        elif generator.device.type != "cpu":
            raise ValueError(f"RLW: generator must be a CPU torch.Generator, got one on {generator.device}")
        self.generator = generator
        self.last_weights = torch.full((num_tasks,), 1.0 / num_tasks)

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        weights = torch.softmax(torch.randn(self.num_tasks, generator=self.generator), dim=0)
        weights = weights.to(device=losses.device, dtype=losses.dtype)
        if self.sync_across_ranks:
            weights = broadcast_from_first_rank(weights)
        return (weights * losses).sum(), weights
