"""GradDrop: per coordinate, keep only the task gradients of one randomly chosen sign."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GradientAggregation, Mode
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_piece_gradients
from taskbalance.method import RandomState


@AGGREGATIONS.register("graddrop")
class GradDrop(RandomState, GradientAggregation):
    """GradDrop: ``P = ½(1 + Σ_k g_k / Σ_k |g_k|)`` per coordinate, ``U ~ Uniform(0, 1)``,
    ``M_k = [P > U]·[g_k > 0] + [P < U]·[g_k < 0]``, ``d = Σ_k (ℓ + (1 − ℓ)·M_k)·g_k``.

    Chen et al. 2020, "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout" (NeurIPS),
    Eq. 1–3 (ℓ = leak, 0 in the paper's main results). The paper applies it at the shared activations, so
    ``mode="representation"`` is the default: ``P`` is computed per element of the representation gradient
    (including the batch dimension). Coordinates where all tasks agree in sign keep every gradient. Works
    elementwise on the stacked per-task gradients (no Gram matrix); ``U`` comes from a ``torch.Generator`` seeded
    by ``seed``. ``last_weights`` is the task scales (GradDrop defines no per-task weights). With ``validate`` a
    non-finite task gradient raises a ``ValueError`` naming the task (one extra pass over the gradients and one
    host read of K numbers).

    Example:
        >>> import torch
        >>> directions, _ = GradDrop(2).aggregate([torch.tensor([[1.0, 2.0], [3.0, 4.0]])], torch.ones(2))
        >>> directions[0]
        tensor([4., 6.])
    """

    formula = "P = ½(1 + Σg/Σ|g|); d = Σ_k [sign(g_k) chosen w.p. P]·g_k"
    paper = "Chen et al., NeurIPS 2020"
    hyperparameters: ClassVar[dict[str, str]] = {
        "leak": "ℓ ∈ [0, 1]: share of each gradient kept regardless of sign (default 0)",
        "seed": "seed of the generator of U (default 0)",
    }
    default_mode: ClassVar[Mode] = "representation"

    def __init__(self, num_tasks: int, *, leak: float = 0.0, seed: int = 0, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"GradDrop: leak must be in [0, 1], got {leak!r}")
        self.leak = float(leak)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def aggregate(self, pieces: list[Tensor], scales: Tensor) -> tuple[list[Tensor], Tensor]:
        # With S⁺ = Σ_k max(g_k, 0) and S⁻ = Σ_k min(g_k, 0): Σg = S⁺ + S⁻ and Σ|g| = S⁺ − S⁻, so P = S⁺/(S⁺ − S⁻),
        # and keeping the positive (negative) gradients sums to S⁺ (S⁻). `U·(S⁺ − S⁻) < S⁺` is `U < P` without a
        # division, and false where every gradient is 0. Four passes over the K task gradients instead of eight.
        check_piece_gradients(self, pieces, scales)
        directions = []
        for piece in pieces:
            scaled = piece * scales.to(piece.dtype).view(-1, *([1] * (piece.dim() - 1)))
            positive = scaled.clamp_min(0).sum(dim=0)
            negative = scaled.clamp_max(0).sum(dim=0)
            uniform = torch.rand(positive.shape, generator=self.generator, dtype=piece.dtype).to(piece.device)
            chosen = torch.where(uniform * (positive - negative) < positive, positive, negative)
            if self.leak > 0:
                chosen = self.leak * (positive + negative) + (1 - self.leak) * chosen
            directions.append(chosen)
        return directions, scales

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, leak={self.leak}, seed={self.seed}"
