"""STCH: smooth Tchebycheff scalarisation of the (log) task losses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import AGGREGATIONS
from taskbalance.weighting.base import LossWeighting


@AGGREGATIONS.register("stch")
class STCH(LossWeighting):
    """STCH: ``total = μ·log Σ_k exp(λ_k·u_k / μ)`` with ``u_k = log L_k`` (or ``L_k`` with ``log_losses=False``).

    Lin et al. 2024, "Smooth Tchebycheff Scalarization for Multi-Objective Optimization" (ICML), Eq. 8 with ideal
    point 0; μ → 0 recovers the Tchebycheff max, μ → ∞ the λ-weighted mean. Preferences λ default to 1. The log
    transform (the authors' MTL setting, which also divides by nadir losses from a warm-up epoch — left out here;
    with logs a constant nadir only shifts u_k and does not change the gradient) makes the method invariant to the
    loss scales. A loss weighting (one backward): ``last_weights`` is
    ``∂total/∂L_k = softmax(λu/μ)_k·λ_k·(1/L_k if log)``. Computed stably with ``logsumexp``.

    Example:
        >>> import torch
        >>> method = STCH(2, mu=1.0)
        >>> method(torch.tensor([1.0, 1.0]))
        tensor(0.6931)
    """

    formula = "μ·log Σ_k exp(λ_k·log L_k / μ)"
    paper = "Lin et al., ICML 2024"
    hyperparameters: ClassVar[dict[str, str]] = {
        "mu": "smoothing μ > 0 (default 1.0)",
        "preference": "λ, K positive numbers (default all 1)",
        "log_losses": "scalarise log L_k instead of L_k (default True)",
    }

    preference: Tensor

    def __init__(
        self,
        num_tasks: int,
        *,
        mu: float = 1.0,
        preference: Sequence[float] | None = None,
        log_losses: bool = True,
        task_names: Sequence[str] | None = None,
        validate: bool = True,
        sync_across_ranks: bool = False,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, validate=validate, sync_across_ranks=sync_across_ranks)
        if not (math.isfinite(mu) and mu > 0):
            raise ValueError(f"STCH: mu must be finite and > 0, got {mu!r}")
        values = [1.0] * num_tasks if preference is None else [float(v) for v in preference]
        if len(values) != num_tasks or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"STCH: preference must be {num_tasks} finite numbers > 0, got {preference!r}")
        self.mu = float(mu)
        self.log_losses = log_losses
        self.requires_positive_losses = log_losses
        self.register_buffer("preference", torch.tensor(values))

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        preference = self.preference.to(values.dtype)
        utilities = losses.log() if self.log_losses else losses
        scores = preference * utilities / self.mu
        total = self.mu * torch.logsumexp(scores, dim=0)
        weights = torch.softmax(scores.detach(), dim=0) * preference
        if self.log_losses:
            weights = weights / values
        return total, weights

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mu={self.mu}, log_losses={self.log_losses}"
