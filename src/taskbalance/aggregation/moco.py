"""MoCo: tracked (momentum) task gradients and simplex weights moved by projected steps towards the min-norm point."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GradientAggregation, combine, gram_matrix
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_piece_gradients, check_task_gradients, scaled_squared_norms


def project_onto_simplex(vector: Tensor) -> Tensor:
    """The Euclidean projection of ``vector`` onto the probability simplex ``{w ≥ 0, Σw = 1}`` (sort-based, no sync).

    With ``u`` sorted decreasingly and ``ρ`` the number of k with ``u_k > (Σ_{j≤k} u_j − 1)/k``, the projection is
    ``max(v − θ, 0)`` for ``θ = (Σ_{j≤ρ} u_j − 1)/ρ`` (Held, Wolfe & Crowder 1974; Duchi et al. 2008).

    Example:
        >>> project_onto_simplex(torch.tensor([0.5, 2.0, -1.0]))
        tensor([0., 1., 0.])
        >>> project_onto_simplex(torch.tensor([0.4, 0.4, 0.4]))
        tensor([0.3333, 0.3333, 0.3333])
    """
    ordered = vector.sort(descending=True).values
    totals = ordered.cumsum(dim=0) - 1
    counts = torch.arange(1, vector.shape[0] + 1, dtype=vector.dtype, device=vector.device)
    support = (ordered > totals / counts).sum()  # ≥ 1: the largest entry always qualifies
    threshold = totals[support - 1] / support.to(vector.dtype)
    return (vector - threshold).clamp_min(0.0)


@AGGREGATIONS.register("moco")
class MoCo(GradientAggregation):
    """MoCo: ``y_k ← y_k − β_t(y_k − g_k)``, ``λ ← Π_Δ(λ − γ_t(YYᵀ + ρI)λ)``, ``d = Σ_k λ_k y_k``.

    Fernando, Shen, Liu, Chaudhury, Murugesan & Chen 2023, "Mitigating Gradient Bias in Multi-objective Learning: A
    Provably Convergent Approach" (ICLR), Algorithm 1. Each task's gradient is tracked by ``y_k`` (a moving average
    with rate ``β_t = β/t^σ_β``), which removes the bias a stochastic MGDA direction has; the simplex weights λ take
    one projected gradient step (rate ``γ_t = γ/t^σ_γ``) on ``½λᵀ(YYᵀ + ρI)λ`` per training step, i.e. towards
    MGDA's min-norm combination of the tracked gradients (with ``β = 1, σ_β = 0``, a constant γ and ρ = 0, repeated
    steps on the same gradients converge to MGDA's weights). Π_Δ is the Euclidean projection onto the simplex
    (:func:`project_onto_simplex`); the Gram matrix ``YYᵀ`` is summed per shared tensor, never flattened.

    Defaults are those of the authors' code as published in LibMTL (β = 0.5, σ_β = 0.5, γ = 0.1, σ_γ = 0.5, ρ = 0).
    That code differs from the paper in three ways, of which ``normalize_gradients=True`` reproduces the first:
    it replaces each task gradient by ``L_k·g_k/|g_k|`` before tracking (then γ acts on loss-sized numbers instead of
    the raw gradient scale), it maps λ back to the simplex with a softmax instead of the projection, and it starts the
    tracking from ``y = 0`` (here ``y`` starts at the first gradient, so the first steps are not shrunk by β_t). The
    paper's projection of ``y_k`` onto a bounded set is not applied (as in the code).

    State in ``state_dict``: λ (buffer ``weights``), the step count and the tracked gradients ``y`` (extra state,
    ``K×`` the size of every shared tensor, moved to the gradients' device on use); the tracking restarts when the
    shapes change. A call that raises leaves the state as it was. ``last_weights`` is λ (times the task scales), the
    weights of the tracked gradients. The direction is a convex combination (mean-like scale).

    Parameters mode only (``mode="representation"`` raises): y averages each coordinate over steps, and a
    representation's coordinates are per sample, of a different batch at every step (and of each rank's own batch
    under ``sync_across_ranks``), so their average would mean nothing.

    Example:
        >>> import torch
        >>> method = MoCo(2, beta=1.0, gamma=0.5, gamma_sigma=0.0)
        >>> directions, weights = method.aggregate([torch.tensor([[1.0, 0.0], [0.0, 2.0]])], torch.ones(2))
        >>> weights  # λ = Π_Δ((½, ½) − ½·(½, 2))
        tensor([0.8750, 0.1250])
    """

    formula = "y_k ← y_k − β_t(y_k − g_k); λ ← Π_Δ(λ − γ_t(YYᵀ + ρI)λ); d = Σ_k λ_k y_k"
    paper = "Fernando et al., ICLR 2023"
    hyperparameters: ClassVar[dict[str, str]] = {
        "beta": "tracking rate β of the task gradients, in (0, 1] (default 0.5; 1 = no tracking)",
        "beta_sigma": "decay exponent σ_β of the tracking rate β/t^σ (default 0.5)",
        "gamma": "step size γ > 0 of the weights λ (default 0.1)",
        "gamma_sigma": "decay exponent σ_γ of the step size γ/t^σ (default 0.5)",
        "rho": "ℓ2 regularisation ρ ≥ 0 of λ's objective (default 0)",
        "normalize_gradients": "track L_k·g_k/|g_k| instead of g_k, the authors' code (default False)",
    }

    weights: Tensor

    # The tracked gradients are averaged per coordinate over steps; a representation's coordinates are per sample.
    supported_modes: ClassVar[tuple[str, ...]] = ("parameters",)

    def __init__(
        self,
        num_tasks: int,
        *,
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
        normalize_gradients: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(num_tasks, **common)
        checks = {
            "beta": (beta, 0 < _number(beta) <= 1, "in (0, 1]"),
            "beta_sigma": (beta_sigma, 0 <= _number(beta_sigma) < math.inf, "finite and >= 0"),
            "gamma": (gamma, 0 < _number(gamma) < math.inf, "finite and > 0"),
            "gamma_sigma": (gamma_sigma, 0 <= _number(gamma_sigma) < math.inf, "finite and >= 0"),
            "rho": (rho, 0 <= _number(rho) < math.inf, "finite and >= 0"),
        }
        for option, (value, ok, requirement) in checks.items():
            if not ok:
                raise ValueError(f"MoCo: {option} must be a number {requirement}, got {value!r}")
        self.beta, self.beta_sigma = float(beta), float(beta_sigma)
        self.gamma, self.gamma_sigma = float(gamma), float(gamma_sigma)
        self.rho = float(rho)
        self.normalize_gradients = bool(normalize_gradients)
        self.steps = 0
        self.tracked: list[Tensor] = []
        self._losses: Tensor | None = None
        self.register_buffer("weights", torch.full((num_tasks,), 1.0 / num_tasks))

    def task_scales(self, losses: Tensor, weighting_scales: Tensor) -> Tensor:
        self._losses = losses.detach()
        return weighting_scales

    def aggregate(self, pieces: list[Tensor], scales: Tensor) -> tuple[list[Tensor], Tensor]:
        if not self.normalize_gradients:  # (normalising checks them itself)
            check_piece_gradients(self, pieces, scales)
        factors = scales
        if self.normalize_gradients:
            factors = scales * self._normalizing_factors(pieces, scales)
        # The state changes only below, after every check: a caught error leaves the step count as it was.
        steps = self.steps + 1
        gradients = [piece * factors.to(piece.dtype).view(-1, *([1] * (piece.dim() - 1))) for piece in pieces]
        rate = self.beta / steps**self.beta_sigma
        if [y.shape for y in self.tracked] != [g.shape for g in gradients]:
            tracked = [g.clone() for g in gradients]
        else:
            # .to(): tracked gradients restored from a checkpoint on the CPU join the gradients' device.
            previous = [y.to(g.device) for y, g in zip(self.tracked, gradients, strict=True)]
            tracked = [y - rate * (y - g) for y, g in zip(previous, gradients, strict=True)]
        gram = gram_matrix(tracked)
        weights = self.weights.to(device=gram.device, dtype=gram.dtype)
        step_size = self.gamma / steps**self.gamma_sigma
        weights = project_onto_simplex(weights - step_size * (gram @ weights + self.rho * weights))
        self.steps, self.tracked = steps, tracked
        self.weights = weights.detach().to(self.weights.dtype)
        return combine(tracked, weights), weights * factors

    def _normalizing_factors(self, pieces: list[Tensor], scales: Tensor) -> Tensor:
        """``L_k/|s_k g_k|``: the factors that give each scaled task gradient the length of its loss."""
        if self._losses is None:
            raise RuntimeError("MoCo: normalize_gradients needs the losses; call step() (or task_scales() first)")
        squared = scaled_squared_norms(pieces, scales)
        if self.validate:
            check_task_gradients(self, squared, "normalize_gradients divides every task gradient by its norm")
        return self._losses.to(squared.dtype) / squared.sqrt()

    def get_extra_state(self) -> Any:
        return {"steps": self.steps, "tracked": [y.detach().clone() for y in self.tracked]}

    def set_extra_state(self, state: Any) -> None:
        self.steps = int(state["steps"])
        self.tracked = [y.clone() for y in state.get("tracked", [])]

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, beta={self.beta}, beta_sigma={self.beta_sigma}, gamma={self.gamma}, "
            f"gamma_sigma={self.gamma_sigma}, rho={self.rho}, normalize_gradients={self.normalize_gradients}"
        )


def _number(value: object) -> float:
    """``value`` as a float, NaN for anything that is not a real number (so every range check fails)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)
