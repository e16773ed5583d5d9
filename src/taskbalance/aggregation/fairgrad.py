"""FairGrad: the α-fair allocation of the update among the tasks' utilities g_k·d."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.cagrad import REDUCTIONS
from taskbalance.aggregation.clipping import ClipsSharedGradient, check_max_norm
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import SOLVE_TOLERANCE, check_task_gradients, relative_residual

# Step sizes 1, ½, ¼, … tried at once by the backtracking line search of the solver (branch-free, no host sync).
_STEP_FRACTIONS = 30
# The solver stops early once this relative residual is reached; convergence is checked every few iterations.
_RESIDUAL_TOLERANCE = 1e-10
_CHECK_EVERY = 5


def alpha_fair_weights(gram: Tensor, alpha: float, iterations: int = 50) -> Tensor:
    """``w > 0`` with ``(Gw)_k = w_k^(−1/α)`` for every k: the α-fair weights of FairGrad.

    ``Gw = w^(−1/α)`` is the stationary point of the strictly convex ``f(w) = ½wᵀGw − Σ_k φ(w_k)`` with
    ``φ(w) = log w`` (α = 1) or ``w^(1−1/α)/(1−1/α)``; it is minimised by Newton steps with a backtracking line search
    on f that keeps ``w > 0`` (all step fractions 1, ½, …, 2⁻²⁹ are evaluated at once and the largest one that does
    not increase f is taken). Computed in float64 on ``G/mean(diag G)``, then rescaled: w scales as
    ``scale^(−α/(α+1))``. The convergence test (relative residual ≤ 1e-10) reads one number on the host every 5
    iterations. α = 1 is Nash-MTL's bargaining equation ``Gw = 1/w``
    (:func:`~taskbalance.aggregation.solvers.nash_bargaining`).

    Example:
        >>> alpha_fair_weights(torch.diag(torch.tensor([1.0, 4.0])), alpha=2.0)  # w_k = G_kk^(−2/3)
        tensor([1.0000, 0.3969])
    """
    matrix = gram.detach().to(torch.float64)
    scale = torch.diagonal(matrix).mean()
    matrix = matrix / scale
    exponent = 1.0 - 1.0 / alpha

    def objective(points: Tensor) -> Tensor:
        quadratic = 0.5 * ((points @ matrix) * points).sum(dim=-1)
        if alpha == 1.0:
            return quadratic - points.log().sum(dim=-1)
        return quadratic - (points.pow(exponent) / exponent).sum(dim=-1)

    weights = torch.diagonal(matrix).pow(-alpha / (alpha + 1))  # the solution for orthogonal gradients
    # The best multiple t·w of that start: t^(1+1/α) = Σ_k w_k^(1−1/α) / wᵀGw.
    weights = weights * (weights.pow(exponent).sum() / (weights @ matrix @ weights)).pow(alpha / (alpha + 1))
    fractions = torch.pow(2.0, -torch.arange(_STEP_FRACTIONS, dtype=torch.float64, device=matrix.device))[:, None]
    for iteration in range(iterations):
        target = weights.pow(-1.0 / alpha)
        residual = matrix @ weights - target
        if iteration % _CHECK_EVERY == _CHECK_EVERY - 1 and bool(
            residual.abs().max() <= _RESIDUAL_TOLERANCE * target.abs().max()
        ):
            break
        hessian = matrix + torch.diag(target / (alpha * weights))
        # solve_ex does not raise on a singular Hessian (w running off along a null space of G): the step is then
        # not finite, no candidate is accepted, and the caller's residual check reports it.
        newton_step = torch.linalg.solve_ex(hessian, residual).result
        candidates = weights - fractions * newton_step
        inside = (candidates > 0).all(dim=1)
        values = objective(torch.where(candidates > 0, candidates, torch.ones_like(candidates)))
        current = objective(weights)
        # A slack of one part in 10¹² lets rounding ties near the optimum take the full step instead of stalling.
        accepted = inside & (values <= current + 1e-12 * current.abs())
        weights = torch.where(accepted.any(), candidates[accepted.to(torch.int8).argmax()], weights)
    return (weights / scale.pow(alpha / (alpha + 1))).to(gram.dtype)


@AGGREGATIONS.register("fairgrad")
class FairGrad(ClipsSharedGradient, GramAggregation):
    """FairGrad: ``d = K·Σ_k w_k g_k`` with ``w > 0`` solving ``(Gw)_k = w_k^(−1/α)`` for every task k, then the
    shared gradient clipped to norm ``max_norm``.

    Ban & Ji 2024, "Fair Resource Allocation in Multi-Task Learning" (ICML). The update maximises the α-fair utility
    ``Σ_k (g_k·d)^(1−α)/(1−α)`` (``Σ_k log(g_k·d)`` for α = 1) over a ball of directions; its stationarity condition
    with ``d = Σ_k w_k g_k`` is ``g_k·d = w_k^(−1/α)``. α = 1 is proportional fairness, Nash-MTL's bargaining solution
    (``NashMTL(max_norm=0)``); α → 0 tends to the sum of the gradients and α → ∞ to max-min
    fairness. Solved in torch by :func:`alpha_fair_weights` instead of the authors' SciPy ``least_squares``.

    As in the paper and the authors' code, the Gram matrix is not normalised, so multiplying every task gradient by
    s multiplies the direction by ``s^((1−α)/(1+α))``: α = 1 gives a direction whose length does not depend on the
    gradients' scale, α > 1 one that grows as the gradients shrink. α = 1.0 is the code's default; the authors'
    scripts use α = 2 for CelebA and QM9.

    Scale, as in the authors' code (``OptMN-Lab/fairgrad``, ``methods/weight_methods.py``): it multiplies the
    direction by K ("to match the sum loss"; ``reduction="sum"``, the default; ``reduction="mean"`` is the paper's
    ``Σ_k w_k g_k``), and then clips the shared parameters' gradient to total norm ``max_norm=1.0`` (its experiments'
    default; ``0`` turns it off), which bounds the step of α > 1 as the gradients vanish. The clip is Nash-MTL's:
    after the step (:func:`~taskbalance.aggregation.clipping.clip_shared_gradients`, no host sync), in
    representation mode on the shared parameters' gradients after the encoder backward. ``last_weights`` is
    ``K·w·s`` (``w·s`` with ``"mean"``) times the clip factor ``min(1, max_norm / |d|)``, so
    ``d = Σ_k last_weights_k ∇L_k`` holds for the applied direction.

    A solution exists when the task gradients are linearly independent. With ``validate=True`` (one host sync)
    a zero or non-finite task gradient, and a solve that does not reach the equations (relative residual above
    1e-6, e.g. for opposite gradients, where no positive solution exists), raise a ``ValueError`` naming the method.

    Example:
        >>> import torch
        >>> gram = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
        >>> FairGrad(2, alpha=1.0, reduction="mean").coefficients(gram)  # w_k = 1/|g_k|
        tensor([1.0000, 0.5000])
        >>> FairGrad(2, alpha=1.0).coefficients(gram)  # × K; step() then clips |d| = √8 to max_norm = 1
        tensor([2., 1.])
    """

    formula = "d = K·Σ_k w_k g_k, (Gw)_k = w_k^(−1/α); shared gradient clipped to max_norm"
    paper = "Ban & Ji, ICML 2024"
    hyperparameters: ClassVar[dict[str, str]] = {
        "alpha": "fairness α > 0 (default 1.0: proportional fairness; → 0: the sum; → ∞: max-min fairness)",
        "iterations": "maximum Newton iterations of the solver (default 50; it stops earlier once converged)",
        "reduction": "'sum' (× K, the authors' code, default) or 'mean' (the paper's d = Σ_k w_k g_k)",
        "max_norm": "clip the shared parameters' gradient norm to this after the step; 0 = off (default 1.0)",
    }
    # 1: the authors' × K and max_norm = 1 clipping by default (was the unclipped Σ_k w_k g_k).
    revision: ClassVar[int] = 1

    def __init__(
        self,
        num_tasks: int,
        *,
        alpha: float = 1.0,
        iterations: int = 50,
        reduction: Literal["mean", "sum"] = "sum",
        max_norm: float = 1.0,
        **common: Any,
    ) -> None:
        super().__init__(num_tasks, **common)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < math.inf:
            raise ValueError(f"FairGrad: alpha must be a finite number > 0, got {alpha!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"FairGrad: iterations must be a positive int, got {iterations!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"FairGrad: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.alpha = float(alpha)
        self.iterations = iterations
        self.reduction: Literal["mean", "sum"] = reduction
        self.max_norm = check_max_norm("FairGrad", max_norm)

    def coefficients(self, gram: Tensor) -> Tensor:
        if self.validate:
            why = "its utility g_k·d is 0 for every direction, so no α-fair weights exist"
            check_task_gradients(self, torch.diagonal(gram), why)
        matrix = gram.to(torch.float64)
        weights = alpha_fair_weights(matrix, self.alpha, self.iterations)  # float64: checked before rounding
        if self.validate:
            error = relative_residual(matrix, weights, weights.pow(-1.0 / self.alpha))
            if not error <= SOLVE_TOLERANCE:
                raise ValueError(
                    f"FairGrad: no positive solution of (Gw)_k = w_k^(-1/α) found in {self.iterations} Newton "
                    f"iterations (relative residual {error:.3g}); the task gradients are linearly dependent (e.g. two "
                    "opposite gradients) or nearly so"
                )
        return weights.to(gram.dtype) * (gram.shape[0] if self.reduction == "sum" else 1)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, alpha={self.alpha}, iterations={self.iterations}, "
            f"reduction={self.reduction!r}, max_norm={self.max_norm}"
        )
