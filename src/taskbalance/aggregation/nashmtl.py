"""Nash-MTL: the Nash bargaining solution of the tasks' utilities g_k·d."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor

from taskbalance.aggregation.base import AGGREGATIONS, GramAggregation, Mode
from taskbalance.aggregation.solvers import nash_bargaining
from taskbalance.weighting.base import LossWeighting


@AGGREGATIONS.register("nashmtl")
class NashMTL(GramAggregation):
    """Nash-MTL: ``d = Σ_k α_k g_k`` with ``α > 0`` solving ``Gα = 1/α`` (elementwise), ``G_ij = g_i·g_j``.

    Navon et al. 2022, "Multi-Task Learning as a Bargaining Game" (ICML), Eq. 3: the bargaining solution maximises
    ``Σ_k log(g_k·d)`` over ``|d| ≤ 1`` up to scale. ``Gα = 1/α`` is the stationary point of the convex
    ``½αᵀGα − Σ log α``, solved by damped Newton in torch (no host sync; see
    :func:`~taskbalance.aggregation.solvers.nash_bargaining`) instead of the authors' sequence of cvxpy problems. As
    in the paper's definition, ``|d|² = αᵀGα = K`` whatever the gradient scale. Left out: the authors' option of
    updating α only every few steps and their gradient-norm clipping (use ``clip_grad_norm_`` in the loop).

    Example:
        >>> import torch
        >>> NashMTL(2).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
        tensor([1.0000, 0.5000])
    """

    formula = "d = Σ_k α_k g_k, Gα = 1/α"
    paper = "Navon et al., ICML 2022"
    hyperparameters: ClassVar[dict[str, str]] = {
        "iterations": "damped Newton iterations of the bargaining solver (default 30)",
    }

    def __init__(
        self,
        num_tasks: int,
        *,
        iterations: int = 30,
        weighting: LossWeighting | None = None,
        mode: Mode | None = None,
        task_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(num_tasks, weighting=weighting, mode=mode, task_names=task_names)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"NashMTL: iterations must be a positive int, got {iterations!r}")
        self.iterations = iterations

    def coefficients(self, gram: Tensor) -> Tensor:
        return nash_bargaining(gram, self.iterations)
