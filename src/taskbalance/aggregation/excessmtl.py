"""ExcessMTL: task weights raised by each task's estimated excess risk (distance to its optimum)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GradientAggregation, combine
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_piece_gradients


@AGGREGATIONS.register("excessmtl")
class ExcessMTL(GradientAggregation):
    """ExcessMTL: ``α ← normalise(α ⊙ exp(η·E/E⁰))``, ``d = Σ_k α_k g_k``, ``E_k = ½ Σ_j g_kj² / √(Σ_τ g_kj,τ²)``.

    He et al. 2024, "Robust Multi-Task Learning with Excess Risks" (ICML). The excess risk of task k (its loss above
    its optimum) is estimated by a second-order Taylor expansion around the optimum, ``E_k ≈ ½ g_kᵀ H_k⁻¹ g_k``,
    with the Hessian replaced by the AdaGrad-style diagonal ``H_k = diag(√(Σ_{τ ≤ t} g_k,τ²))`` of the task's squared
    gradients accumulated over all steps so far (this one included); a task whose gradient vanishes (at its optimum)
    has ``E_k = 0``. To compare tasks of different loss scales each estimate is divided by the task's estimate at
    the end of the warm-up, ``E⁰_k`` ("scale normalisation"), and the weights take an exponentiated-gradient
    (multiplicative-weights) step ``α_k ← α_k·exp(η·E_k/E⁰_k)`` followed by a normalisation to the simplex
    (``Σ α_k = 1``, as in the paper; the authors' LibMTL code normalises to ``Σ α_k = K`` — K times this direction).
    Weights start uniform (1/K) and stay so during the warm-up (the ``warmup_steps`` first steps, and always the first
    step, which sets ``E⁰``; ``E⁰`` is the mean estimate over the warm-up). The direction is the weighted sum of the
    task gradients of the shared parameters; ``last_weights`` is α (times the task scales of a composed weighting).

    Defaults: ``step_size`` η = 0.01 (LibMTL's ``robust_step_size``), ``warmup_steps = 0`` (the authors' code: the
    first step's estimate is ``E⁰``; the paper's appendix collects statistics for 3 epochs instead, i.e.
    ``warmup_steps = 3 × steps per epoch``).

    State (in ``state_dict``, as extra state): the accumulated squared gradients (one tensor per shared parameter,
    ``K×`` its size), ``E⁰`` (or its running sum during the warm-up), α and the step count. Parameters mode only: the
    squared sums are per parameter coordinate, which the per-sample coordinates of a representation are not. A call
    that raises (e.g. a zero ``E⁰``) leaves the state as it was.
    Extra cost per step: the K per-task backward passes of every gradient method, plus one ``K×P`` accumulation.

    Example:
        >>> import torch
        >>> method = ExcessMTL(2, step_size=1.0)
        >>> _ = method.aggregate([torch.tensor([[1.0, 0.0], [0.0, 2.0]])], torch.ones(2))  # sets E⁰, α = (½, ½)
        >>> _, weights = method.aggregate([torch.tensor([[0.0, 0.0], [0.0, 2.0]])], torch.ones(2))
        >>> weights  # task 0 is at its optimum (zero gradient): its weight drops
        tensor([0.3302, 0.6698])
    """

    formula = "α ← normalise(α·exp(η·E/E⁰)), E_k = ½ Σ g_k²/√(Σ_t g_k²), d = Σ_k α_k g_k"
    paper = "He et al., ICML 2024 (Robust Multi-Task Learning with Excess Risks)"
    hyperparameters: ClassVar[dict[str, str]] = {
        "step_size": "exponentiated-gradient step size η of the weights (default 0.01)",
        "warmup_steps": "steps with uniform weights whose mean excess-risk estimate is the baseline E⁰ (default 0)",
    }

    # The squared-gradient sums are per parameter coordinate; a representation's coordinates are per sample.
    supported_modes: ClassVar[tuple[str, ...]] = ("parameters",)

    def __init__(self, num_tasks: int, *, step_size: float = 0.01, warmup_steps: int = 0, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if not step_size > 0 or step_size == float("inf"):
            raise ValueError(f"ExcessMTL: step_size must be a finite number > 0, got {step_size!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"ExcessMTL: warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.step_size = float(step_size)
        self.warmup_steps = warmup_steps
        self.steps = 0
        self.squared_sums: list[Tensor] = []
        self.baseline = torch.zeros(num_tasks, dtype=torch.float64)
        self.weights = torch.full((num_tasks,), 1.0 / num_tasks, dtype=torch.float64)

    def aggregate(self, pieces: list[Tensor], scales: Tensor) -> tuple[list[Tensor], Tensor]:
        check_piece_gradients(self, pieces, scales)
        scaled = [piece * scales.to(piece.dtype).view(-1, *([1] * (piece.dim() - 1))) for piece in pieces]
        # The new state is built in locals and committed only after every check passed, so a caught error leaves
        # the method as it was (a half-updated baseline would make every later call return NaN weights).
        squared_sums = self._accumulated(scaled)
        excess = self.excess_risks(scaled, squared_sums)
        # The small state follows the gradients' device, so no step copies it to the host.
        baseline, weights = self.baseline.to(excess.device), self.weights.to(excess.device)
        steps = self.steps + 1
        if steps <= max(self.warmup_steps, 1):
            baseline = baseline + excess
            if steps == max(self.warmup_steps, 1):
                baseline = baseline / steps
                self._check_baseline(baseline)
        else:
            ratio = excess / baseline
            weights = torch.softmax(torch.log(weights) + self.step_size * ratio, dim=0)
        self.steps, self.squared_sums, self.baseline, self.weights = steps, squared_sums, baseline, weights
        applied = weights.to(device=scales.device, dtype=scales.dtype)
        return combine(pieces, applied * scales), applied * scales

    def excess_risks(self, gradients: list[Tensor], squared_sums: list[Tensor] | None = None) -> Tensor:
        """``E_k = ½ Σ_j g_kj² / √S_kj`` over every coordinate, with ``S`` the accumulated squared gradients
        (``squared_sums``, by default the method's own).

        A coordinate with ``S_kj = 0`` has ``g_kj = 0`` and contributes 0 (no epsilon in the denominator).
        """
        sums = self.squared_sums if squared_sums is None else squared_sums
        total = torch.zeros(self.num_tasks, dtype=torch.float64, device=gradients[0].device)
        for gradient, squared_sum in zip(gradients, sums, strict=True):
            root = squared_sum.sqrt()
            ratio = torch.where(root > 0, gradient.pow(2) / torch.where(root > 0, root, torch.ones_like(root)), 0.0)
            total = total + ratio.reshape(self.num_tasks, -1).sum(dim=1).to(torch.float64)
        return 0.5 * total

    def _accumulated(self, gradients: list[Tensor]) -> list[Tensor]:
        """The squared-gradient sums with this step's gradients added (the method's own are left unchanged)."""
        squares = [g.detach().pow(2) for g in gradients]
        if not self.squared_sums:
            return squares
        if [s.shape for s in self.squared_sums] != [s.shape for s in squares]:
            raise ValueError(
                f"ExcessMTL: the shared gradients changed shape from {[tuple(s.shape) for s in self.squared_sums]} to "
                f"{[tuple(s.shape) for s in squares]}; its accumulated squared gradients need the same shared "
                "parameters at every step"
            )
        # .to(): sums restored from a checkpoint on the CPU join the gradients' device.
        return [total.to(square.device) + square for total, square in zip(self.squared_sums, squares, strict=True)]

    def _check_baseline(self, baseline: Tensor) -> None:
        for k, value in enumerate(baseline.tolist()):
            if not value > 0 or value == float("inf"):
                raise ValueError(
                    f"ExcessMTL: the baseline excess-risk estimate E⁰ of {self.task_label(k)} is {value}; its "
                    "gradient of the shared parameters was zero (or not finite) over the warm-up, so E/E⁰ is undefined"
                )

    def get_extra_state(self) -> Any:
        return {
            "steps": self.steps,
            "squared_sums": [s.detach().clone() for s in self.squared_sums],
            "baseline": self.baseline.clone(),
            "weights": self.weights.clone(),
        }

    def set_extra_state(self, state: Any) -> None:
        self.steps = int(state["steps"])
        self.squared_sums = [s.clone() for s in state["squared_sums"]]
        self.baseline = state["baseline"].clone()
        self.weights = state["weights"].clone()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, step_size={self.step_size}, warmup_steps={self.warmup_steps}"
