"""Gradient methods against independent references at their edges: badly scaled, rank-deficient, zero and
non-finite task gradients, and the first steps of stateful methods."""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from taskbalance import methods
from taskbalance.aggregation import AGGREGATIONS, IMTLG, AlignedMTL, CAGrad, GradNorm, NashMTL

TASKS = ["seg", "depth", "normal"]


# ----------------------------------------------------------------------------------------------- CAGrad
def cagrad_dual_reference(jacobian: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """``min_{w ∈ Δ} b·w + r·√(wᵀAw)`` (A = JJᵀ, b = A·1/K, r = c|g₀|) exactly, in 60-digit arithmetic.

    The objective is convex, so its minimum lies on some face S of the simplex where it is stationary:
    ``b_S + r·A_S w/|g_w| = λ1``. With ``w = (s/r)·A_S⁻¹(λ1 − b_S)`` (s = |g_w|), ``|g_w| = s`` gives the quadratic
    ``(λ1 − b)ᵀA⁻¹(λ1 − b) = r²`` in λ and ``Σw = 1`` fixes s; every face and root is tried, the feasible (w ≥ 0)
    candidate with the smallest value is the minimum. Returns the value and the direction ``g₀ + r·g_w/|g_w|``.
    """
    mpmath.mp.dps = 60
    num_tasks = jacobian.shape[0]
    jac = mpmath.matrix(jacobian.tolist())
    gram = jac * jac.T
    towards_mean = mpmath.matrix([sum(gram[i, j] for j in range(num_tasks)) / num_tasks for i in range(num_tasks)])
    radius = c * mpmath.sqrt(sum(towards_mean) / num_tasks)
    best: tuple[mpmath.mpf, mpmath.matrix] | None = None
    for size in range(1, num_tasks + 1):
        for face in itertools.combinations(range(num_tasks), size):
            candidates = []
            if size == 1:
                candidates.append(mpmath.matrix([1]))
            else:
                inverse = mpmath.matrix([[gram[i, j] for j in face] for i in face]) ** -1
                b = mpmath.matrix([towards_mean[i] for i in face])
                ones = mpmath.matrix([1] * size)
                p, q, u = (ones.T * inverse * ones)[0], (ones.T * inverse * b)[0], (b.T * inverse * b)[0]
                discriminant = q * q - p * (u - radius**2)
                if discriminant < 0:
                    continue
                for lam in ((q + mpmath.sqrt(discriminant)) / p, (q - mpmath.sqrt(discriminant)) / p):
                    v = inverse * (lam * ones - b)
                    if sum(v) > 0:
                        candidates.append(v / sum(v))
            for on_face in candidates:
                if any(x < 0 for x in on_face):
                    continue
                w = mpmath.matrix([0] * num_tasks)
                for position, task in enumerate(face):
                    w[task] = on_face[position]
                value = (towards_mean.T * w)[0] + radius * mpmath.sqrt((w.T * gram * w)[0])
                if best is None or value < best[0]:
                    best = (value, w)
    assert best is not None
    value, w = best
    combined = jac.T * w
    mean = jac.T * mpmath.matrix([mpmath.mpf(1) / num_tasks] * num_tasks)
    direction = mean + radius * combined / mpmath.norm(combined)
    return float(value), np.array([float(x) for x in direction])


def badly_scaled_jacobian(seed: int, num_tasks: int, ratio: float) -> np.ndarray:
    """Random task gradients with norms spread log-uniformly, task 0 of norm 1 and task 1 of norm ``ratio``."""
    rng = np.random.default_rng(seed)
    jacobian = rng.standard_normal((num_tasks, 8))
    jacobian /= np.linalg.norm(jacobian, axis=1, keepdims=True)
    jacobian *= np.exp(rng.uniform(0, np.log(ratio), size=(num_tasks, 1)))
    jacobian[0] /= np.linalg.norm(jacobian[0])
    jacobian[1] *= ratio / np.linalg.norm(jacobian[1])
    return jacobian


@pytest.mark.parametrize("ratio", [1.0, 1e2, 1e4, 1e5, 1e6])
@pytest.mark.parametrize("num_tasks", [2, 3, 4])
def test_cagrad_matches_the_exact_dual_solution_at_any_gradient_norm_ratio(num_tasks: int, ratio: float) -> None:
    c = 0.4
    for seed in range(4):
        jacobian = badly_scaled_jacobian(seed, num_tasks, ratio)
        value, expected = cagrad_dual_reference(jacobian, c)
        coefficients = CAGrad(num_tasks, c=c, rescale=False).coefficients(torch.tensor(jacobian @ jacobian.T))
        direction = coefficients.numpy() @ jacobian
        assert np.linalg.norm(direction - expected) <= 1e-6 * np.linalg.norm(expected), (seed, ratio)
        # The dual value at the returned w (coefficients = 1/K + step·w, Σw = 1).
        w = coefficients.numpy() - 1 / num_tasks
        w /= w.sum()
        gram = jacobian @ jacobian.T
        radius = c * math.sqrt(gram.mean())
        found = float(w @ gram.mean(axis=1) + radius * math.sqrt(w @ gram @ w))
        assert abs(found - value) <= 1e-9 * abs(value), (seed, ratio, found, value)


def test_cagrad_reduction_sum_is_k_times_the_mean_direction() -> None:
    gram = torch.tensor([[1.0, -0.5, 0.2], [-0.5, 2.0, 0.1], [0.2, 0.1, 3.0]], dtype=torch.float64)
    mean = CAGrad(3).coefficients(gram)
    torch.testing.assert_close(CAGrad(3, reduction="sum").coefficients(gram), 3 * mean)
    with pytest.raises(ValueError, match=r"CAGrad: reduction must be one of \('mean', 'sum'\), got 'total'"):
        CAGrad(3, reduction="total")  # type: ignore[arg-type]


def test_cagrad_with_a_zero_task_gradient_keeps_the_mean_gradient() -> None:
    # The dual objective is 0 at the zero gradient's vertex and > 0 elsewhere for aligned gradients: step 0.
    gram = torch.tensor([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.5, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(CAGrad(3, rescale=False).coefficients(gram), torch.full((3,), 1 / 3, dtype=gram.dtype))


# ----------------------------------------------------------------------------------------------- Nash-MTL
def test_nashmtl_solves_the_papers_system_on_the_raw_gram_matrix() -> None:
    # The authors' program: α_k·N·(G/N·α)_k ≥ 1 with N = ‖G‖_F, tight at the optimum: α_k(Gα)_k = 1 on the raw G.
    # G = diag(1, 4): α_1² = 1, 4α_2² = 1.
    torch.testing.assert_close(NashMTL(2).coefficients(torch.diag(torch.tensor([1.0, 4.0]))), torch.tensor([1.0, 0.5]))
    # A scaled problem has the same direction: α scales as 1/√scale, d = Σ α_k g_k is unchanged.
    gram = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(NashMTL(2).coefficients(100 * gram), NashMTL(2).coefficients(gram) / 10)


def test_nashmtl_has_no_gram_normalisation_option_any_more() -> None:
    with pytest.raises(methods.MethodError, match="normalize_gram"):
        methods.create("nashmtl", 2, normalize_gram=True)


# ----------------------------------------------------------------------------------------------- Aligned-MTL
def test_alignedmtl_rank_tolerance_follows_the_float32_gram() -> None:
    # Seeds 1, 4 and 5 give a positive float32 rounding-noise eigenvalue (~1e-4) for the exact null direction: kept
    # as λ_min, it shrank |d| from ~70 to ~0.02.
    for seed in range(6):
        generator = torch.Generator().manual_seed(seed)
        first, second = torch.randn(2, 200, generator=generator, dtype=torch.float64) * 3
        jacobian = torch.stack([first, second, first + second])  # rank 2
        # float64 reference on the same gradients: the exact null eigenvalue is dropped.
        expected = AlignedMTL(3).coefficients(jacobian @ jacobian.T) @ jacobian
        single = jacobian.float()
        direction = AlignedMTL(3).coefficients(single @ single.T) @ single
        assert float(expected.norm()) > 10.0
        torch.testing.assert_close(direction.double(), expected, rtol=1e-4, atol=1e-4 * float(expected.norm()))


# ----------------------------------------------------------------------------------------------- IMTL-G
def test_imtlg_gives_a_zero_gradient_task_no_weight_and_equalises_the_others() -> None:
    jacobian = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    alpha = IMTLG(3).coefficients(jacobian @ jacobian.T)
    # By hand: d·u_0 = α_0, d·u_2 = 2α_2 → α_0 = 2α_2, α_0 + α_2 = 1.
    torch.testing.assert_close(alpha, torch.tensor([2 / 3, 0.0, 1 / 3], dtype=torch.float64))
    assert float(alpha[1]) == 0.0
    direction = alpha @ jacobian
    assert float(direction.norm()) > 0


def test_imtlg_parallel_gradients_get_equal_weights() -> None:
    jacobian = torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(IMTLG(2).coefficients(jacobian @ jacobian.T), torch.tensor([0.5, 0.5]).double())


# ----------------------------------------------------------------------------------------------- GradNorm
def test_gradnorm_rejects_a_zero_first_loss_naming_the_task() -> None:
    method = GradNorm(3, task_names=TASKS)
    with pytest.raises(ValueError, match=r"GradNorm: the first loss of task 1 \('depth'\) is 0.0; .*> 0"):
        method.check_step_losses(torch.tensor([1.0, 0.0, 2.0], requires_grad=True) * 1.0)


def test_gradnorm_allows_later_zero_losses_and_defines_all_zero_rates() -> None:
    method = GradNorm(3)
    method.task_scales(torch.tensor([1.0, 2.0, 4.0]), torch.ones(3))
    method.check_step_losses(torch.tensor([1.0, 0.0, 2.0], requires_grad=True) * 1.0)  # not a first loss
    method.task_scales(torch.tensor([1.0, 0.0, 2.0]), torch.ones(3))  # ratios (1, 0, ½), mean ½
    torch.testing.assert_close(method.relative_rates, torch.tensor([2.0, 0.0, 1.0]))
    method.task_scales(torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(method.relative_rates, torch.ones(3))


# ----------------------------------------------------------------------------------------------- bad values
class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(4, 5), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(5, 1) for _ in TASKS)


def task_losses(model: TinyModel, bad: str) -> tuple[Tensor, list[Tensor]]:
    """Losses (all ≥ 1) of three tasks; task 1 ('depth') is made bad in the way named by ``bad``.

    A list, not a stacked tensor: the backward of ``torch.stack`` would send a zero gradient into task 1's ``sqrt``
    for the other tasks too, and 0·inf = NaN would reach their gradients as well.
    """
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    rep = model.encoder(x)
    losses = [head(rep).pow(2).mean() + 1.0 for head in model.heads]
    if bad == "nan loss":
        losses[1] = losses[1] * math.nan
    elif bad == "inf loss":
        losses[1] = losses[1] * math.inf
    elif bad == "inf gradient":  # value 1 + …, derivative of sqrt at 0 = inf
        losses[1] = losses[1] + torch.sqrt(rep - rep.detach()).sum()
    elif bad == "nan gradient":  # value 1 + …, derivative 0·inf = NaN
        losses[1] = losses[1] + torch.sqrt(rep * 0.0).sum()
    elif bad == "zero gradient":
        losses[1] = model.heads[1](rep.detach()).pow(2).mean() + 1.0 + (rep * 0.0).sum()
    return rep, losses


GRADIENT_METHODS = AGGREGATIONS.names()


# The loss check of the base class names the value; the gradient check says what is not finite.
EXPECTED_MESSAGES = {
    "nan loss": r"the loss of task 1 \('depth'\) is nan",
    "inf loss": r"the loss of task 1 \('depth'\) is inf",
    "inf gradient": r"the gradient of task 1 \('depth'\) is not finite",
    "nan gradient": r"the gradient of task 1 \('depth'\) is not finite",
}


@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize("bad", list(EXPECTED_MESSAGES))
def test_every_gradient_method_rejects_non_finite_losses_and_gradients_naming_method_and_task(
    name: str, bad: str
) -> None:
    model = TinyModel()
    method = methods.create(name, TASKS)
    rep, losses = task_losses(model, bad)
    if "gradient" in bad:
        assert bool(torch.isfinite(torch.stack(losses)).all())
    with pytest.raises(ValueError, match=rf"{type(method).__name__}: {EXPECTED_MESSAGES[bad]}"):
        method.step(losses, shared_parameters=model.encoder.parameters(), representation=rep)


def test_nashmtl_names_a_task_with_a_zero_gradient() -> None:
    model = TinyModel()
    _, losses = task_losses(model, "zero gradient")
    with pytest.raises(ValueError, match=r"NashMTL: the gradient of task 1 \('depth'\) is zero .* non-zero"):
        methods.create("nashmtl", TASKS).step(losses, shared_parameters=model.encoder.parameters())


@pytest.mark.parametrize("name", ["imtlg", "mgda", "upgrad", "alignedmtl", "cagrad", "pcgrad"])
def test_a_zero_task_gradient_is_no_error_where_the_method_defines_it(name: str) -> None:
    model = TinyModel()
    rep, losses = task_losses(model, "zero gradient")
    methods.create(name, TASKS).step(losses, shared_parameters=model.encoder.parameters(), representation=rep)
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    if name != "mgda":  # MGDA's min-norm point is the zero gradient itself
        assert sum(float(g.norm()) for g in grads) > 0
