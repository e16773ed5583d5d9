"""FAMO: fast adaptive multitask optimisation, a loss weighting that balances the tasks' log-loss decrease."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import AGGREGATIONS
from taskbalance.weighting.base import LossWeighting


@AGGREGATIONS.register("famo")
class FAMO(LossWeighting):
    """FAMO: ``total = Σ_k (z_k / c)·log L_k``, ``z = softmax(ξ)``, ``c = Σ_k z_k / L_k`` (``c`` constant).

    Liu et al. 2023, "FAMO: Fast Adaptive Multitask Optimization" (NeurIPS), Algorithm 1. The logits ξ are updated
    at every call from the log-loss decrease since the previous call, ``δ_k = log L_k(t−1) − log L_k(t)``:
    ``ξ ← Adam step on J_softmax(ξ)ᵀδ + γξ`` (lr 0.025, γ = 1e-3: the authors' defaults). The paper re-evaluates
    the losses of the *same* batch after the step; to cost no extra forward pass, δ here compares consecutive
    batches — a noisier estimate of the same decrease. ξ and its Adam state are buffers (saved
    in ``state_dict``), not parameters: the model's optimizer must not touch them. A loss weighting (one backward,
    O(1) in K), so it lives here with the gradient methods only as their cheap counterpart; the training loop
    treats it like any ``LossWeighting``. ``last_weights`` is ``∂total/∂L_k = z_k / (c·L_k)``. Losses must be > 0.

    Example:
        >>> import torch
        >>> method = FAMO(2)
        >>> method(torch.tensor([1.0, 4.0])).shape, method.last_weights
        (torch.Size([]), tensor([0.8000, 0.2000]))
    """

    formula = "Σ_k softmax(ξ)_k·log L_k / Σ_j (softmax(ξ)_j/L_j); ξ ← Adam(J_softmaxᵀ Δlog L + γξ)"
    paper = "Liu et al., NeurIPS 2023"
    hyperparameters: ClassVar[dict[str, str]] = {
        "lr": "Adam step size of the logits ξ (default 0.025)",
        "weight_decay": "γ, L2 pull of ξ towards 0 (default 1e-3)",
    }
    requires_positive_losses = True

    logits: Tensor
    previous_log_losses: Tensor
    moment: Tensor
    second_moment: Tensor
    updates: Tensor

    def __init__(
        self,
        num_tasks: int,
        *,
        lr: float = 0.025,
        weight_decay: float = 1e-3,
        task_names: Sequence[str] | None = None,
        validate: bool = True,
        sync_across_ranks: bool = False,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, validate=validate, sync_across_ranks=sync_across_ranks)
        if not lr > 0:
            raise ValueError(f"FAMO: lr must be > 0, got {lr!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.register_buffer("logits", torch.zeros(num_tasks))
        self.register_buffer("previous_log_losses", torch.full((num_tasks,), torch.nan))
        self.register_buffer("moment", torch.zeros(num_tasks))
        self.register_buffer("second_moment", torch.zeros(num_tasks))
        self.register_buffer("updates", torch.zeros(()))

    @torch.no_grad()
    def _update_logits(self, log_values: Tensor) -> None:
        has_previous = (~torch.isnan(self.previous_log_losses)).all().to(self.logits.dtype)
        decrease = torch.nan_to_num(self.previous_log_losses - log_values, nan=0.0)
        z = torch.softmax(self.logits, dim=0)
        gradient = z * (decrease - (z * decrease).sum()) + self.weight_decay * self.logits
        beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the authors use
        self.updates.add_(has_previous)
        self.moment.lerp_(gradient, (1 - beta1) * has_previous)
        self.second_moment.lerp_(gradient.square(), (1 - beta2) * has_previous)
        steps = self.updates.clamp_min(1.0)
        corrected = self.moment / (1 - beta1**steps)
        corrected_second = self.second_moment / (1 - beta2**steps)
        self.logits.sub_(has_previous * self.lr * corrected / (corrected_second.sqrt() + eps))
        self.previous_log_losses.copy_(log_values)

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        log_values = values.log()
        self._update_logits(log_values.to(self.logits.dtype))
        z = torch.softmax(self.logits, dim=0).to(values.dtype)
        normaliser = (z / values).sum()
        return (z / normaliser * losses.log()).sum(), z / (normaliser * values)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lr={self.lr}, weight_decay={self.weight_decay}"
