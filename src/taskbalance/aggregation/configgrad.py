"""ConFIG: the conflict-free direction with equal positive cosines to every task gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients


@AGGREGATIONS.register("config")
class ConFIG(GramAggregation):
    """ConFIG: ``g_u = U⁺1`` (``U`` = the unit task gradients ``u_k = g_k/|g_k|`` as rows), ``d = (Σ_k g_k·ĝ_u)·ĝ_u``.

    Liu, Chu & Thuerey 2025, "ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks" (ICLR),
    Eq. 4–5 with equal weights. ``g_u`` is the minimum-norm solution of ``u_k·g_u = 1`` for every k, so the unit
    direction ``ĝ_u = g_u/|g_u|`` has the same positive cosine ``1/|g_u|`` with every task gradient; its length is
    the sum of the task gradients' projections on it (so the scale is that of the *sum* of the task gradients).

    In Gram form, with ``C = D⁻¹GD⁻¹`` the cosine matrix (``D = diag|g_k|``): ``g_u = Jᵀ D⁻¹ C⁺1``,
    ``|g_u|² = aᵀGa`` for ``a = D⁻¹C⁺1``, and ``d = Jᵀ (1ᵀGa)·a/|g_u|²``. All in torch (float64 on the K×K matrix).
    ``C⁺`` is the pseudo-inverse (eigenvalues below ``K·eps`` of the gradients' dtype count as zero), as the
    authors' least-squares solve.

    Degenerate inputs raise a ``ValueError`` naming the method, with ``validate=True`` (one host sync): a zero (or
    non-finite) task gradient, which has no direction; and unit gradients for which ``u_k·g = 1`` has no solution
    (e.g. two opposite gradients, or more tasks than independent directions), where no direction has equal positive
    cosines with all of them. The momentum variant of the paper (M-ConFIG) is not included.

    Example:
        >>> import torch
        >>> ConFIG(2).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))  # g = (1, 0), (0, 2): d = (1.5, 1.5)
        tensor([1.5000, 0.7500])
    """

    formula = "d = (Σ_k g_k·ĝ_u)·ĝ_u, g_u = U⁺1, U = rows g_k/|g_k|"
    paper = "Liu, Chu & Thuerey, ICLR 2025"

    def coefficients(self, gram: Tensor) -> Tensor:
        if self.validate:
            check_task_gradients(self, torch.diagonal(gram), "ConFIG normalises every task gradient to unit length")
        num_tasks = gram.shape[0]
        matrix = gram.to(torch.float64)
        norms = torch.diagonal(matrix).sqrt()
        cosines = matrix / (norms[:, None] * norms[None, :])
        tolerance = num_tasks * torch.finfo(gram.dtype).eps
        ones = torch.ones(num_tasks, dtype=torch.float64, device=gram.device)
        unit_coefficients = torch.linalg.pinv(cosines, rtol=tolerance, hermitian=True) @ ones  # g_u = Σ c_k u_k
        if self.validate:
            self._check_equal_projections(cosines @ unit_coefficients)
        raw = unit_coefficients / norms  # g_u = Σ_k raw_k g_k
        squared_length = raw @ matrix @ raw
        projection_sum = ones @ (matrix @ raw)  # Σ_k g_k·g_u
        return (projection_sum / squared_length * raw).to(gram.dtype)

    def _check_equal_projections(self, projections: Tensor) -> None:
        # u_k·g_u for every k: all 1 when the system u_k·g = 1 is solvable, else the least-squares compromise.
        tolerance = float(torch.finfo(torch.float32).eps) ** 0.5
        error = float((projections - 1).abs().max())
        if not error <= tolerance:
            raise ValueError(
                f"ConFIG: no direction has equal positive cosines with every task gradient (the unit gradients are "
                f"linearly dependent in a way that excludes it, e.g. two opposite gradients; residual {error:.3g})"
            )
