"""UW-SO: soft analytical uncertainty weighting, the core method of Kirchdorfer et al. (2024)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.types import SearchSpace
from taskbalance.validation import real_number
from taskbalance.weighting.base import LossWeighting, positive_temperature
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("uwso")
class UWSO(LossWeighting):
    """UW-SO: ``total = Σ_k ω_k·L_k`` with ``ω = softmax_k((1/sg[L_k]) / T)``.

    Kirchdorfer et al. 2024, "Analytical Uncertainty-Based Loss Weighting in Multi-Task Learning", arXiv 2408.07985:
    the analytical inverse-loss weights of UW-O, made to sum to 1 by a tempered softmax. The weights come from the
    detached losses (no gradient flows through them), have no learnable state, and sum to 1; ``last_weights`` is ω.
    A large ``T`` tends to equal weights 1/K; a small ``T`` puts all weight on the smallest loss. Because the
    softmax input is 1/L, a sensible ``T`` scales with the spread of 1/L_k (see docs/methods.md; the paper tunes T
    over {1, 3, 5, 7, 10, 15, 20}, higher for small loss units). The softmax is ``torch.softmax``, which subtracts
    the maximum first; when 1/(L·T) itself overflows (a subnormal loss), the logits are computed already shifted by
    their maximum, so the weights stay finite (all weight on the tiny loss). Every loss must be finite and > 0.

    Args:
        num_tasks: K.
        temperature: T > 0 (default 1.0, the smallest value of the paper's grid; tune it).

    Example:
        >>> import torch
        >>> method = UWSO(2, temperature=1.0)
        >>> total = method(torch.tensor([1.0, 0.5]))  # softmax([1, 2]) = [0.2689, 0.7311]
        >>> method.last_weights
        tensor([0.2689, 0.7311])
    """

    formula = "Σ_k softmax_k((1/sg[L_k]) / T)·L_k"
    paper = "Kirchdorfer et al., arXiv 2408.07985 (2024)"
    hyperparameters: ClassVar[dict[str, str]] = {"temperature": (
        "softmax temperature T > 0 on 1/L (default 1.0; paper grid 1–20, higher for small loss units)"
    )}
    requires_positive_losses = True

    def __init__(self, num_tasks: int, temperature: float = 1.0, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        self.temperature = positive_temperature("UWSO", real_number("UWSO", "temperature", temperature))
        self.last_weights = torch.full((num_tasks,), 1.0 / num_tasks)

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        logits = values.reciprocal() / self.temperature
        # 1/(L·T) overflows to inf for a tiny loss (a float32 subnormal such as 1e-39), and softmax(inf) is NaN. The
        # max-shifted logits (1/L_k − 1/L_min)/T = (L_min − L_k)/(L_k·L_min·T) ≤ 0 give the same softmax and cannot
        # overflow; they replace the plain ones only then, so ordinary losses keep their exact weights (no sync).
        smallest = values.min()
        shifted = torch.where(values == smallest, 0.0, (smallest - values) / (values * smallest) / self.temperature)
        weights = torch.softmax(torch.where(torch.isfinite(logits).all(), logits, shifted), dim=0)
        return (weights * losses).sum(), weights

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, temperature={self.temperature}"

    @classmethod
    def search_grid(cls, space: SearchSpace) -> list[dict[str, Any]]:
        """The protocol's grid of UW-SO: one point per temperature of ``space.temperatures``.

        Kirchdorfer et al. 2024 (Sec. 5) tune T over {1, 3, 5, 7, 10, 15, 20}, further up for small loss units.

        Example:
            >>> UWSO.search_grid(SearchSpace(num_tasks=2, temperatures=(1.0, 5.0)))
            [{'temperature': 1.0}, {'temperature': 5.0}]
        """
        if not space.temperatures:
            raise ValueError("UW-SO's temperature grid is empty: give at least one temperature (--temperatures)")
        bad = [t for t in space.temperatures if not (math.isfinite(t) and t > 0)]
        if bad:
            raise ValueError(f"UW-SO's temperatures must be finite and > 0 (--temperatures), got {bad[0]:g}")
        return [{"temperature": float(t)} for t in space.temperatures]
