"""CAGrad: the direction that maximises the worst task improvement within a ball around the mean gradient."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients, conflict_averse_coefficients
from taskbalance.validation import real_number

REDUCTIONS: tuple[str, ...] = ("mean", "sum")


@AGGREGATIONS.register("cagrad")
class CAGrad(GramAggregation):
    """CAGrad: ``d = argmax_{|d − g₀| ≤ c|g₀|} min_k g_k·d`` with ``g₀ = (1/K)Σ_k g_k``.

    Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task Learning" (NeurIPS). By duality
    ``d = g₀ + (c|g₀| / |g_w|)·g_w`` with ``g_w = Σ_k w_k g_k`` and ``w = argmin_{w ∈ Δ_K} g_w·g₀ + c|g₀|·|g_w|``,
    solved on the Gram matrix with SciPy's SLSQP (as the authors do; one host copy of K×K numbers, ~2 ms), scaled so
    that its tolerance is relative whatever the ratio of the task-gradient norms (see
    :func:`~taskbalance.aggregation.solvers.conflict_averse_coefficients`). With ``rescale=True`` (the authors'
    default for MTL) the direction is divided by ``1 + c²``. ``c = 0`` gives the mean gradient without calling the
    solver. Hyper-parameter ``c = 0.4`` is the paper's choice for NYUv2/Cityscapes.

    Scale: the paper's ``d`` is built around the *mean* gradient ``g₀`` (``reduction="mean"``, the default), i.e.
    ``1/K`` of the plain sum of the task gradients at ``c = 0``. The authors' NYUv2 trainer multiplies the direction
    by K before the optimizer step, to match the scale of the summed losses; ``reduction="sum"`` does the same, so
    a learning rate tuned for the sum of the losses carries over.

    Example:
        >>> import torch
        >>> CAGrad(2, c=0.0).coefficients(torch.eye(2))
        tensor([0.5000, 0.5000])
        >>> CAGrad(2, c=0.0, reduction="sum").coefficients(torch.eye(2))
        tensor([1., 1.])
    """

    formula = "d = (g₀ + c|g₀|·g_w/|g_w|) / (1 + c²), w = argmin_{w ∈ Δ} g_w·g₀ + c|g₀||g_w|"
    paper = "Liu et al., NeurIPS 2021"
    hyperparameters: ClassVar[dict[str, str]] = {
        "c": "radius of the ball around the mean gradient, relative to |g₀| (default 0.4)",
        "rescale": "divide the direction by 1 + c² (default True)",
        "reduction": "'mean' (the paper: around the mean gradient, default) or 'sum' (× K, the authors' trainers)",
    }

    def __init__(
        self,
        num_tasks: int,
        *,
        c: float = 0.4,
        rescale: bool = True,
        reduction: Literal["mean", "sum"] = "mean",
        **common: Any,
    ) -> None:
        super().__init__(num_tasks, **common)
        if not (np.isfinite(real_number("CAGrad", "c", c)) and c >= 0):
            raise ValueError(f"CAGrad: c must be finite and >= 0, got {c!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"CAGrad: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.c = float(c)
        self.rescale = rescale
        self.reduction: Literal["mean", "sum"] = reduction

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        num_tasks = gram.shape[0]
        mean = torch.full((num_tasks,), 1.0 / num_tasks, dtype=gram.dtype, device=gram.device)
        if self.c == 0.0:
            coefficients = mean
        else:
            weights, step = conflict_averse_coefficients(gram, self.c)
            coefficients = mean + step * weights
        if self.rescale:
            coefficients = coefficients / (1.0 + self.c**2)
        return coefficients * (num_tasks if self.reduction == "sum" else 1)

    def extra_repr(self) -> str:
        reduction = "" if self.reduction == "mean" else f", reduction={self.reduction!r}"
        return f"{super().extra_repr()}, c={self.c}, rescale={self.rescale}{reduction}"
