"""CAGrad: the direction that maximises the worst task improvement within a ball around the mean gradient."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.validation import real_number


@AGGREGATIONS.register("cagrad")
class CAGrad(GramAggregation):
    """CAGrad: ``d = argmax_{|d − g₀| ≤ c|g₀|} min_k g_k·d`` with ``g₀ = (1/K)Σ_k g_k``.

    Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task Learning" (NeurIPS). By duality
    ``d = g₀ + (c|g₀| / |g_w|)·g_w`` with ``g_w = Σ_k w_k g_k`` and ``w = argmin_{w ∈ Δ_K} g_w·g₀ + c|g₀|·|g_w|``,
    solved on the Gram matrix with SciPy's SLSQP (as the authors do; one host copy of K×K numbers, ~2 ms). With
    ``rescale=True`` (the authors' default for MTL) the direction is divided by ``1 + c²``. ``c = 0`` gives the mean
    gradient without calling the solver. Hyper-parameter ``c = 0.4`` is the paper's choice for NYUv2/Cityscapes.

    Example:
        >>> import torch
        >>> CAGrad(2, c=0.0).coefficients(torch.eye(2))
        tensor([0.5000, 0.5000])
    """

    formula = "d = (g₀ + c|g₀|·g_w/|g_w|) / (1 + c²), w = argmin_{w ∈ Δ} g_w·g₀ + c|g₀||g_w|"
    paper = "Liu et al., NeurIPS 2021"
    hyperparameters: ClassVar[dict[str, str]] = {
        "c": "radius of the ball around the mean gradient, relative to |g₀| (default 0.4)",
        "rescale": "divide the direction by 1 + c² (default True)",
    }

    def __init__(
        self,
        num_tasks: int,
        *,
        c: float = 0.4,
        rescale: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(num_tasks, **common)
        if not (np.isfinite(real_number("CAGrad", "c", c)) and c >= 0):
            raise ValueError(f"CAGrad: c must be finite and >= 0, got {c!r}")
        self.c = float(c)
        self.rescale = rescale

    def coefficients(self, gram: Tensor) -> Tensor:
        num_tasks = gram.shape[0]
        mean = torch.full((num_tasks,), 1.0 / num_tasks, dtype=gram.dtype, device=gram.device)
        if self.c == 0.0:
            return mean
        matrix = gram.detach().to(torch.float64).cpu().numpy()
        scale = float(np.mean(np.diag(matrix)))
        matrix = matrix / scale if scale > 0 else matrix
        towards_mean = matrix.mean(axis=1)  # G·(1/K): entries g_k·g₀
        radius = self.c * np.sqrt(max(float(towards_mean.mean()), 0.0))  # c·|g₀|

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            gw_norm = np.sqrt(max(float(w @ matrix @ w), 1e-30))
            value = float(w @ towards_mean) + radius * gw_norm
            return value, towards_mean + radius * (matrix @ w) / gw_norm

        start = np.full(num_tasks, 1.0 / num_tasks)
        result = minimize(
            objective,
            start,
            jac=True,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * num_tasks,
            constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)},),
            options={"ftol": 1e-12, "maxiter": 200},
        )
        w = np.clip(result.x, 0.0, None)
        gw_norm = np.sqrt(max(float(w @ matrix @ w), 0.0))
        step = radius / gw_norm if gw_norm > 0 else 0.0
        coefficients = np.full(num_tasks, 1.0 / num_tasks) + step * w
        if self.rescale:
            coefficients = coefficients / (1.0 + self.c**2)
        return torch.as_tensor(coefficients, dtype=gram.dtype, device=gram.device)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, c={self.c}, rescale={self.rescale}"
