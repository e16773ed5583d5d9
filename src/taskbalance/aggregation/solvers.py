"""Small K-dimensional problems of the gradient methods, solved on the Gram matrix (never on the gradients).

Solvers in torch run without host syncs; the two non-negative least-squares solvers call SciPy's exact
Lawson–Hanson ``nnls`` and therefore copy the ``K×K`` Gram matrix to the host (one sync per step, microseconds for
K ≤ 40).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls
from torch import Tensor


def _normalised(gram: Tensor) -> np.ndarray:
    """The Gram matrix in float64 on the host, divided by its mean diagonal (solutions below are scale-free)."""
    matrix = gram.detach().to(torch.float64).cpu().numpy()
    scale = float(np.mean(np.diag(matrix)))
    return matrix / scale if scale > 0 else matrix


def _psd_square_root(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A, eigenvalues, eigenvectors)`` with ``AᵀA = matrix`` (negative rounding noise clipped to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    values = np.clip(values, 0.0, None)
    return np.sqrt(values)[:, None] * vectors.T, values, vectors


def min_norm_coefficients(gram: Tensor) -> Tensor:
    """``argmin_{c ∈ simplex} cᵀGc``: the min-norm point of the convex hull of the task gradients (MGDA).

    K = 1 and K = 2 use the closed form (torch, no sync). For K ≥ 3 the problem is reduced exactly to a
    non-negative least-squares problem: with ``AᵀA = G + 11ᵀ`` and ``Aᵀb = 1``, ``u = argmin_{u ≥ 0} |Au − b|²``
    satisfies ``g_k·(Ju) ≥ 1 − Σu`` with equality where ``u_k > 0``, so ``c = u/Σu`` meets MGDA's KKT conditions
    ``g_k·d ≥ |d|²`` (equality on the support) for ``d = Σ c_k g_k``.
    """
    num_tasks = gram.shape[0]
    if num_tasks == 1:
        return torch.ones(1, dtype=gram.dtype, device=gram.device)
    if num_tasks == 2:
        # c·g1 + (1 − c)·g2 with c = clip((g2·g2 − g1·g2) / |g1 − g2|², 0, 1); equal gradients give c = ½.
        g11, g12, g22 = gram[0, 0], gram[0, 1], gram[1, 1]
        denominator = g11 + g22 - 2 * g12
        ratio = (g22 - g12) / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        first = torch.where(denominator > 0, ratio.clamp(0.0, 1.0), torch.full_like(ratio, 0.5))
        return torch.stack([first, 1 - first])
    matrix = _normalised(gram) + 1.0
    root, values, vectors = _psd_square_root(matrix)
    tolerance = values.max() * num_tasks * np.finfo(np.float64).eps
    inverse_root = np.where(values > tolerance, 1.0 / np.sqrt(np.where(values > tolerance, values, 1.0)), 0.0)
    target = inverse_root * (vectors.T @ np.ones(num_tasks))
    solution, _ = nnls(root, target)
    return torch.as_tensor(solution / solution.sum(), dtype=gram.dtype, device=gram.device)


def dual_cone_coefficients(gram: Tensor) -> Tensor:
    """Row i: ``v_i = argmin_{v ≥ e_i} vᵀGv``, so ``Jᵀv_i`` is g_i projected onto the dual cone ``{x: Jx ≥ 0}``.

    Used by UPGrad. With ``v = e_i + u``: ``min_{u ≥ 0} |A(u + e_i)|²``, ``AᵀA = G`` — one NNLS per task. Its KKT
    conditions give ``G v_i ≥ 0``: the projection conflicts with no task gradient.
    """
    num_tasks = gram.shape[0]
    root, _, _ = _psd_square_root(_normalised(gram))
    rows = np.eye(num_tasks)
    for i in range(num_tasks):
        rows[i] = _lowest_norm_above(root, rows[i])
    return torch.as_tensor(rows, dtype=gram.dtype, device=gram.device)


def dual_cone_projection(gram: Tensor, weights: Tensor) -> Tensor:
    """``v = argmin_{v ≥ w} vᵀGv``, so ``Jᵀv`` is ``Jᵀw`` projected onto the dual cone ``{x: Jx ≥ 0}`` (DualProj).

    The same NNLS as :func:`dual_cone_coefficients` with the lower bound ``w`` instead of ``e_i``; its KKT conditions
    give ``Gv ≥ 0`` (no conflict with any task) and ``v = w`` when ``Gw ≥ 0`` already.
    """
    root, _, _ = _psd_square_root(_normalised(gram))
    lower = weights.detach().to(torch.float64).cpu().numpy()
    return torch.as_tensor(_lowest_norm_above(root, lower), dtype=gram.dtype, device=gram.device)


def _lowest_norm_above(root: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """``argmin_{v ≥ lower} |Av|²`` (``A`` = ``root``): the NNLS ``min_{u ≥ 0} |Au + A·lower|²``, ``v = lower + u``."""
    solution, _ = nnls(root, -(root @ lower))
    return lower + solution


def nash_bargaining(gram: Tensor, iterations: int = 30) -> Tensor:
    """``α > 0`` with ``Gα = 1/α`` elementwise (Nash-MTL's bargaining solution), by damped Newton in torch.

    ``Gα = 1/α`` is the stationary point of the strictly convex, self-concordant ``f(α) = ½αᵀGα − Σ log α_k``; the
    damped Newton step ``α ← α − Δ/(1 + λ)`` (λ = Newton decrement) stays inside ``α > 0`` and converges
    quadratically near the optimum. A fixed number of iterations keeps it free of host syncs. Computed in float64
    on ``G / mean(diag G)`` (then rescaled: α scales as ``1/√scale``). Needs G positive definite (independent task
    gradients); otherwise no bargaining solution exists and α grows along the null space.
    """
    matrix = gram.detach().to(torch.float64)
    scale = torch.diagonal(matrix).mean()
    matrix = matrix / scale
    diagonal = torch.diagonal(matrix).clamp_min(torch.finfo(torch.float64).tiny)
    alpha = diagonal.rsqrt()
    # Best multiple of the diagonal solution: f(tα) is minimal at t = sqrt(K / αᵀGα).
    alpha = alpha * torch.sqrt(alpha.new_tensor(float(gram.shape[0])) / (alpha @ matrix @ alpha))
    for _ in range(iterations):
        gradient = matrix @ alpha - alpha.reciprocal()
        hessian = matrix + torch.diag(alpha.pow(-2))
        step = torch.linalg.solve(hessian, gradient)
        decrement = torch.sqrt((gradient * step).sum().clamp_min(0.0))
        alpha = alpha - step / (1 + decrement)
    return (alpha / scale.sqrt()).to(gram.dtype)
