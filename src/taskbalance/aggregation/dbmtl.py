"""DB-MTL: log-transformed losses and task gradients rescaled to the largest (EMA) gradient norm."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GradientAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients


@AGGREGATIONS.register("dbmtl")
class DBMTL(GradientAggregation):
    """DB-MTL: ``ĝ_k = EMA_t(∇ log L_k)``, ``d = max_j |ĝ_j| · Σ_k ĝ_k / |ĝ_k|``.

    Lin et al. 2023, "Dual-Balancing for Multi-Task Learning" (arXiv 2308.12029): loss-scale balancing by the log
    transform (``∇ log L_k = ∇L_k / L_k``, applied as the task scale ``1/L_k``) and gradient-magnitude balancing
    by normalising every task's EMA gradient to the largest norm. EMA:
    ``ĝ_k ← g_k + (β / t^σ)·(ĝ_k − g_k)`` at step t = 1, 2, … (β = 0.9, σ = 0.5, the authors' defaults), starting
    from ``ĝ_k = 0`` as the authors' code does (LibMTL's ``DB_MTL``, by the paper's first author): the first
    update is ``(1 − β)·g_k``, then ``(1 − β/√2)·g_k + …``, a built-in warm-up of the step size (the first three
    steps are about 10×, 2.3× and 1.4× smaller than with ``ĝ_1 = g_1``). The direction's normalisation makes only
    the relative sizes of the ĝ_k matter, so the warm-up scales the step, not its direction.

    The EMA gradients (one tensor per shared tensor, ``K×`` its size) and the step count are saved in ``state_dict``
    (as extra state), so a run resumed from a checkpoint continues the same averages (restored tensors move to the
    gradients' device on use). They restart from 0 when the shapes change, with the step count kept. Losses must be
    > 0; ``validate`` checks it with one host sync per call, and that every task's EMA gradient is finite (a
    ``ValueError`` naming the task).
    Parameters mode only (``mode="representation"`` raises): the EMA averages each coordinate over steps, and a
    representation's coordinates are per sample, of a different batch at every step (and of each rank's own batch
    under ``sync_across_ranks``, which would make the norms per rank).
    ``last_weights`` is ``max_j|ĝ_j| / (|ĝ_k|·L_k)``.

    Example:
        >>> import torch
        >>> method = DBMTL(2, beta=0.0)
        >>> directions, _ = method.aggregate([torch.tensor([[3.0, 0.0], [0.0, 1.0]])], torch.ones(2))
        >>> directions[0]
        tensor([3., 3.])
        >>> directions, _ = DBMTL(2).aggregate([torch.tensor([[3.0, 0.0], [0.0, 1.0]])], torch.ones(2))
        >>> directions[0]  # first step from ĝ = 0: (1 − 0.9)·(3, 3)
        tensor([0.3000, 0.3000])
    """

    formula = "d = max_j|ĝ_j|·Σ_k ĝ_k/|ĝ_k|, ĝ_k = EMA(∇ log L_k)"
    paper = "Lin et al., arXiv 2308.12029 (2023)"
    hyperparameters: ClassVar[dict[str, str]] = {
        "beta": "EMA factor β of the gradients (default 0.9; 0 = no EMA)",
        "beta_sigma": "decay exponent σ of the EMA factor β/t^σ (default 0.5)",
    }

    requires_positive_losses = True
    # The EMA is per coordinate over steps; a representation's coordinates are per sample of each step's batch.
    supported_modes: ClassVar[tuple[str, ...]] = ("parameters",)

    def __init__(self, num_tasks: int, *, beta: float = 0.9, beta_sigma: float = 0.5, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"DBMTL: beta must be in [0, 1), got {beta!r}")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        self.steps = 0
        self.ema_gradients: list[Tensor] = []

    def task_scales(self, losses: Tensor, weighting_scales: Tensor) -> Tensor:
        return weighting_scales / losses.detach()

    def aggregate(self, pieces: list[Tensor], scales: Tensor) -> tuple[list[Tensor], Tensor]:
        step = self.steps + 1
        factor = self.beta / step**self.beta_sigma
        scaled = [piece * scales.to(piece.dtype).view(-1, *([1] * (piece.dim() - 1))) for piece in pieces]
        previous = self.ema_gradients
        if [b.shape for b in previous] != [p.shape for p in scaled]:
            previous = [torch.zeros_like(p) for p in scaled]
        else:  # EMA gradients restored from a checkpoint on the CPU join the gradients' device
            previous = [b.to(p.device) for b, p in zip(previous, scaled, strict=True)]
        averages = [p + factor * (b - p) for b, p in zip(previous, scaled, strict=True)]
        squared = torch.as_tensor(sum(b.reshape(b.shape[0], -1).pow(2).sum(dim=1) for b in averages))
        check_task_gradients(self, squared)  # before the state changes, so a caught error leaves it intact
        self.steps, self.ema_gradients = step, averages
        norms = squared.sqrt()
        inverse = torch.where(norms > 0, norms.max() / norms.clamp_min(torch.finfo(norms.dtype).tiny), 0.0)
        directions = [torch.tensordot(inverse.to(b.dtype), b, dims=1) for b in self.ema_gradients]
        return directions, inverse * scales

    def get_extra_state(self) -> Any:
        return {"steps": self.steps, "ema_gradients": [g.detach().clone() for g in self.ema_gradients]}

    def set_extra_state(self, state: Any) -> None:
        self.steps = int(state["steps"])
        self.ema_gradients = [g.clone() for g in state.get("ema_gradients", [])]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}, beta_sigma={self.beta_sigma}"
