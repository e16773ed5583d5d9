"""Small K-dimensional problems of the gradient methods, solved on the Gram matrix (never on the gradients).

Solvers in torch run without host syncs; the two non-negative least-squares solvers call SciPy's exact
Lawson–Hanson ``nnls`` and CAGrad's solver SciPy's SLSQP, and therefore copy the ``K×K`` Gram matrix to the host
(one sync per step, microseconds for K ≤ 40). :func:`check_task_gradients` turns a non-finite (or, where a method
needs it, zero) task gradient into an error naming the method and the task.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.optimize import minimize, nnls
from torch import Tensor

if TYPE_CHECKING:
    from taskbalance.method import Method


def check_task_gradients(method: Method, squared_norms: Tensor, why_nonzero: str | None = None) -> None:
    """Raise a ``ValueError`` naming the method and the task unless every task gradient is finite (and, when the
    method says ``why_nonzero``, non-zero).

    ``squared_norms`` holds ``|g_k|²`` (the Gram diagonal); it is non-finite exactly when task k's gradient holds a
    NaN or ±inf (or its squared norm overflows the dtype), which finite losses do not exclude (e.g. ``sqrt`` at 0).
    One read of K numbers on the host, only with ``method.validate`` (the same switch as the loss check); the
    message is built only on failure.

    Example:
        >>> import torch
        >>> from taskbalance.aggregation import NashMTL
        >>> check_task_gradients(NashMTL(2, task_names=["seg", "depth"]), torch.tensor([1.0, 0.0]), "it divides by α")
        Traceback (most recent call last):
        ...
        ValueError: NashMTL: the gradient of task 1 ('depth') is zero ...
    """
    if not method.validate:
        return
    bad = ~torch.isfinite(squared_norms)
    if why_nonzero is not None:
        bad = bad | (squared_norms <= 0)
    if not bool(bad.any()):
        return
    name = type(method).__name__
    for k, value in enumerate(squared_norms.tolist()):
        label = method.task_label(k)
        if not math.isfinite(value):
            raise ValueError(
                f"{name}: the gradient of {label} is not finite (its squared norm is {value}) although the losses "
                "are; the model has diverged or an operation has no derivative there (e.g. sqrt at 0)"
            )
        if why_nonzero is not None and value <= 0:
            raise ValueError(
                f"{name}: the gradient of {label} is zero (times its weighting scale) with respect to the shared "
                f"{getattr(method, 'mode', 'parameters')}; {why_nonzero}"
            )
    raise AssertionError("unreachable: a value failed the combined check but not the per-task one")


def random_partner_orders(num_tasks: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``[K, K−1]``: row i is the other tasks in a random order (drawn on the CPU ``generator``)."""
    keys = torch.rand(num_tasks, num_tasks, generator=generator)
    keys.fill_diagonal_(2.0)  # every key is < 1: the task itself sorts last and is dropped
    return keys.argsort(dim=1)[:, : num_tasks - 1].to(device)


def scaled_squared_norms(pieces: list[Tensor], scales: Tensor) -> Tensor:
    """``|s_k·g_k|²`` of every task from its stacked gradient pieces (``[K, ...]`` each)."""
    squared = sum(piece.reshape(piece.shape[0], -1).pow(2).sum(dim=1) for piece in pieces)
    return torch.as_tensor(squared) * scales.square()


def check_piece_gradients(method: Method, pieces: list[Tensor], scales: Tensor) -> None:
    """:func:`check_task_gradients` for methods that do not form the Gram matrix (nothing without ``validate``)."""
    if method.validate:
        check_task_gradients(method, scaled_squared_norms(pieces, scales))


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
    tolerance = values.max() * num_tasks * rank_tolerance(gram.dtype)
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



# The largest relative residual a checked solve of a fixed-point system accepts (Nash-MTL, FairGrad).
SOLVE_TOLERANCE = 1e-6


def relative_residual(matrix: Tensor, solution: Tensor, target: Tensor) -> float:
    """``max |G·x − t| / max |t|`` of a solve of ``G·x = t`` (one host read); ``inf`` where it is not finite."""
    return float(residual_tensor(matrix, solution, target))


def residual_tensor(matrix: Tensor, solution: Tensor, target: Tensor) -> Tensor:
    """:func:`relative_residual` as a 0-dim tensor, for a caller that folds it into a check of its own (no read)."""
    return ((matrix @ solution - target).abs().max() / target.abs().max()).nan_to_num(math.inf)


def nash_bargaining(gram: Tensor, iterations: int = 30) -> Tensor:
    """``α > 0`` with ``Gα = 1/α`` elementwise (Nash-MTL's bargaining solution), by damped Newton in torch.

    ``Gα = 1/α`` is the stationary point of the strictly convex, self-concordant ``f(α) = ½αᵀGα − Σ log α_k``; the
    damped Newton step ``α ← α − Δ/(1 + λ)`` (λ = Newton decrement) stays inside ``α > 0`` and converges
    quadratically near the optimum. A fixed number of iterations keeps it free of host syncs. Computed in float64
    on ``G / mean(diag G)`` (then rescaled: α scales as ``1/√scale``). Needs G positive definite (independent task
    gradients); otherwise no bargaining solution exists: α grows along the null space, or (exactly opposite
    gradients) the Newton system is singular and α is not finite. Nothing here raises on that; the caller checks
    the residual ``|Gα − 1/α| / max(1/α)`` (``NashMTL`` does with ``validate``).
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
        # solve_ex does not raise (nor sync) on a singular Hessian: the step is then not finite, and so is α, which
        # the caller's residual check reports.
        step = torch.linalg.solve_ex(hessian, gradient).result
        decrement = torch.sqrt((gradient * step).sum().clamp_min(0.0))
        alpha = alpha - step / (1 + decrement)
    return (alpha / scale.sqrt()).to(gram.dtype)


def rank_tolerance(dtype: torch.dtype) -> float:
    """The machine epsilon of the Gram matrix's own dtype: eigenvalues below ``λ_max·K·eps`` are rounding noise.

    A float32 Gram matrix carries float32 rounding even when a solver works in float64, so its eps decides.
    """
    return float(torch.finfo(dtype).eps)


def conflict_averse_coefficients(gram: Tensor, c: float) -> tuple[Tensor, Tensor]:
    """CAGrad's dual ``w = argmin_{w ∈ Δ_K} g_w·g₀ + c|g₀|·|g_w|`` (``g_w = Σ w_k g_k``, ``g₀ = mean_k g_k``).

    Returns ``(w, step)`` with ``step = c|g₀| / |g_w|`` (0 when ``g_w = 0``), so CAGrad's direction is
    ``g₀ + step·g_w``. Solved with SciPy's SLSQP in the scaled variables ``v_k = w_k·|g_k| / min_j |g_j|`` and on
    the unit-gradient Gram matrix: each ``v_k`` moves ``g_w`` by a comparable amount and the objective, divided by
    ``|g₀|·min_j |g_j|`` and by its starting value, is of order 1, so SLSQP's absolute tolerance acts as a relative
    one even when the task-gradient norms differ by 10⁶ (on ``w`` directly, a weight of 10⁻⁶ on a large gradient
    would turn ``g_w`` completely, and the solver stopped early). The start is the best vertex of the simplex.
    Tasks with a zero gradient are left out: the objective is positively homogeneous, so with them the minimum is
    ``min(0, minimum over the others)``, and a non-negative minimum gives ``step = 0`` (the mean gradient).
    """
    num_tasks = gram.shape[0]
    matrix = _normalised(gram)
    towards_mean = matrix.mean(axis=1)  # G·(1/K): entries g_k·g₀
    mean_norm = math.sqrt(max(float(towards_mean.mean()), 0.0))  # |g₀|
    norms = np.sqrt(np.clip(np.diag(matrix), 0.0, None))
    active = np.flatnonzero(norms > 0)
    weights = np.zeros(num_tasks)
    if mean_norm == 0.0 or active.size == 0:
        return _as_tensor(weights, gram), gram.new_zeros(())
    norms_active = norms[active]
    relative = norms_active / norms_active.min()
    unit = matrix[np.ix_(active, active)] / np.outer(norms_active, norms_active)
    linear = towards_mean[active] / (norms_active * mean_norm)  # u_k·g₀/|g₀|

    def scaled_value(v: np.ndarray) -> tuple[float, np.ndarray]:
        length = math.sqrt(max(float(v @ unit @ v), 1e-300))
        return float(v @ linear) + c * length, linear + c * (unit @ v) / length

    best = int(np.argmin(relative * (linear + c)))  # the value at vertex e_k is |g_k|(u_k·ĝ₀ + c)
    start = np.zeros(active.size)
    start[best] = relative[best]
    factor = abs(scaled_value(start)[0]) or 1.0
    inverse = 1.0 / relative
    result = minimize(
        lambda v: tuple(part / factor for part in scaled_value(v)),
        start,
        jac=True,
        method="SLSQP",
        bounds=[(0.0, float(bound)) for bound in relative],
        constraints=({"type": "eq", "fun": lambda v: v @ inverse - 1.0, "jac": lambda v: inverse},),
        options={"ftol": 1e-15, "maxiter": 500},
    )
    v = np.clip(result.x, 0.0, None)
    if active.size < num_tasks and scaled_value(v)[0] >= 0:
        return _as_tensor(weights, gram), gram.new_zeros(())
    w_active = v / relative
    weights[active] = w_active / w_active.sum()
    length = math.sqrt(max(float(weights @ matrix @ weights), 0.0))
    step = c * mean_norm / length if length > 0 else 0.0
    return _as_tensor(weights, gram), gram.new_tensor(step)


def _as_tensor(values: np.ndarray, like: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)
