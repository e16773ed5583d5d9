"""IMTL-L, the loss-balancing part of Impartial Multi-Task Learning (Liu et al. 2021)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskbalance.validation import real_number
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("imtll")
class IMTLL(LossWeighting):
    """IMTL-L: ``total = Σ_k e^(s_k)·L_k − s_k`` with learnable scales ``s_k`` (init 0).

    Minimising over ``s_k`` drives ``e^(s_k)·L_k`` to 1 (fixed point ``e^(s_k) = 1/L_k``), so every scaled loss is
    balanced at 1 (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021, Sec. 3.2). ``last_weights`` is
    ``e^(s_k)``. The scales are the ``nn.Parameter`` ``log_scales``: give ``method.parameters()`` to the optimizer.
    Every loss must be ≥ 0 (for ``L_k < 0`` the objective has no minimum and ``s_k`` grows without bound).

    Args:
        num_tasks: K.
        init: initial ``s_k`` (default 0.0, as in the paper).

    Example:
        >>> import torch
        >>> IMTLL(2)(torch.tensor([1.0, 3.0]))
        tensor(4., grad_fn=<SubBackward0>)
    """

    formula = "Σ_k e^(s_k)·L_k − s_k, s learnable, init 0"
    learns_parameters: ClassVar[bool] = True
    # e^s·L − s has its minimum at e^s = 1/L for L > 0; for L < 0 s grows without bound (a 0 moves it one step).
    requires_nonnegative_losses = True
    positive_losses_reason: ClassVar[str] = (
        "learns each task's scale from its loss (e^s·L − s has no minimum over s for L < 0)"
    )
    paper = "Liu et al., ICLR 2021 (IMTL)"
    hyperparameters: ClassVar[dict[str, str]] = {"init": "initial log-scale s_k (default 0.0)"}

    log_scales: nn.Parameter

    def __init__(self, num_tasks: int, init: float = 0.0, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if not math.isfinite(real_number("IMTLL", "init", init)):
            raise ValueError(f"IMTLL: init must be a finite log-scale, got {init}")
        self.log_scales = nn.Parameter(torch.full((num_tasks,), float(init)))
        self.last_weights = torch.exp(self.log_scales).detach()

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        weights = torch.exp(self.log_scales)
        return (weights * losses).sum() - self.log_scales.sum(), weights
