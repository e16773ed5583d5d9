"""Scalarization: a fixed, user-chosen weighted sum of the task losses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.types import SearchSpace
from taskbalance.validation import real_numbers
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("scalarization")
class Scalarization(LossWeighting):
    """Fixed linear scalarization: ``total = Σ_k ω_k·L_k``; ``last_weights`` is ω.

    Kirchdorfer et al. (2024, arXiv 2408.07985) search ω over a grid on the simplex as a strong, expensive baseline
    (cf. Xin et al. 2022, "Do current multi-task optimization methods in deep learning even help?").

    Args:
        num_tasks: K.
        weights: K finite weights ≥ 0, not all 0. They are used as given (not normalised). Default: 1/K each, the
            centre of the simplex (EW scaled by 1/K).

    The weights are a buffer, so they are saved in ``state_dict`` and follow ``.to()``.

    Example:
        >>> import torch
        >>> Scalarization(3, weights=[0.2, 0.3, 0.5])(torch.tensor([1.0, 1.0, 2.0]))
        tensor(1.5000)
    """

    formula = "Σ_k ω_k·L_k, ω fixed"
    paper = "linear scalarization (Xin et al. 2022)"
    hyperparameters: ClassVar[dict[str, str]] = {"weights": "K fixed weights ≥ 0, not all 0 (default 1/K each)"}

    scalar_weights: Tensor

    def __init__(self, num_tasks: int, weights: Sequence[float] | Tensor | None = None, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if weights is None:
            values = [1.0 / num_tasks] * num_tasks
        else:
            values = real_numbers("Scalarization", "weights", weights)
        if len(values) != num_tasks:
            raise ValueError(f"Scalarization: got {len(values)} weights {values} for {num_tasks} tasks")
        for index, value in enumerate(values):
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"Scalarization: weight of {self.task_label(index)} is {value}; weights must be finite and ≥ 0"
                )
        if not any(value > 0 for value in values):
            raise ValueError(f"Scalarization: weights {values} are all 0; at least one must be > 0")
        self.register_buffer("scalar_weights", torch.tensor(values))
        self.last_weights = self.scalar_weights.clone()

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.scalar_weights
        return (weights * losses).sum(), weights

    @classmethod
    def search_grid(cls, space: SearchSpace) -> list[dict[str, Any]]:
        """The brute-force grid of Kirchdorfer et al. 2024 (Sec. 5): every weight vector on the simplex with
        ``space.simplex_step`` spacing and every weight ≥ ``space.simplex_min_weight`` (36 points for 3 tasks).

        Example:
            >>> len(Scalarization.search_grid(SearchSpace(num_tasks=3)))
            36
            >>> Scalarization.search_grid(SearchSpace(num_tasks=2, simplex_step=0.25, simplex_min_weight=0.25))[0]
            {'weights': [0.25, 0.75]}
        """
        # Imported here: the protocol sits above the weightings, so importing a weighting does not load it.
        from taskbalance.protocol.grid import simplex_grid

        points = simplex_grid(space.num_tasks, space.simplex_step, space.simplex_min_weight)
        return [{"weights": list(weights)} for weights in points]
