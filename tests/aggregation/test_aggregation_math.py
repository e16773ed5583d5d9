"""The mathematics of every Gram-based method, on random gradient matrices J (K×P, float64)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from taskbalance.aggregation import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    GramAggregation,
    NashMTL,
    PCGrad,
    UPGrad,
)

FAST = settings(max_examples=40, deadline=None, derandomize=True)


def random_jacobian(seed: int, num_tasks: int, size: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.randn(num_tasks, 1, generator=generator, dtype=torch.float64))
    return scales * torch.randn(num_tasks, size, generator=generator, dtype=torch.float64)


def direction(method: GramAggregation, jacobian: Tensor) -> Tensor:
    (result,), _ = method.aggregate([jacobian], torch.ones(jacobian.shape[0], dtype=jacobian.dtype))
    return result


seeds = st.integers(0, 2**31 - 1)
any_shape = st.tuples(st.integers(2, 6), st.integers(1, 12))  # K > P (dependent gradients) included
independent = st.integers(2, 5).flatmap(lambda k: st.tuples(st.just(k), st.integers(k + 1, 12)))


@FAST
@given(seeds, any_shape)
def test_mgda_direction_is_the_min_norm_point_by_kkt(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    c = MGDA(shape[0]).coefficients(gram)
    assert torch.all(c >= 0) and abs(float(c.sum()) - 1) < 1e-9
    d = c @ jacobian
    tolerance = 1e-7 * float(gram.diagonal().max())
    products = jacobian @ d
    assert torch.all(products >= d @ d - tolerance), (products, d @ d)
    support = c > 1e-6
    torch.testing.assert_close(products[support], (d @ d).expand(int(support.sum())), atol=tolerance, rtol=0)


def test_mgda_two_tasks_closed_form_by_hand() -> None:
    # g1 = (1, 0), g2 = (0, 2): min over c of c² + 4(1−c)² at c = 4/5.
    c = MGDA(2).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    torch.testing.assert_close(c, torch.tensor([0.8, 0.2]))
    # One gradient inside the hull's "shadow" of the other: g2 = 2·g1 → min-norm point is g1.
    torch.testing.assert_close(MGDA(2).coefficients(torch.tensor([[1.0, 2.0], [2.0, 4.0]])), torch.tensor([1.0, 0.0]))


@FAST
@given(seeds, st.integers(2, 12))
def test_pcgrad_two_conflicting_gradients_conflict_with_neither(seed: int, size: int) -> None:
    jacobian = random_jacobian(seed, 2, size)
    if float(jacobian[0] @ jacobian[1]) >= 0:
        jacobian[1] = jacobian[1] - 2 * (jacobian[0] @ jacobian[1]) / (jacobian[0] @ jacobian[0]) * jacobian[0]
    assert float(jacobian[0] @ jacobian[1]) < 0
    d = direction(PCGrad(2), jacobian)
    scale = float((jacobian**2).sum())
    assert float(jacobian[0] @ d) >= -1e-9 * scale
    assert float(jacobian[1] @ d) >= -1e-9 * scale


def test_pcgrad_by_hand() -> None:
    # g1·g2 = −1, |g1|² = 1, |g2|² = 4: g1' = g1 + g2/4, g2' = g2 + g1, sum = 2·g1 + 1.25·g2.
    c = PCGrad(2).coefficients(torch.tensor([[1.0, -1.0], [-1.0, 4.0]]))
    torch.testing.assert_close(c, torch.tensor([2.0, 1.25]))
    # No conflict: plain sum.
    torch.testing.assert_close(PCGrad(3).coefficients(torch.eye(3)), torch.ones(3))


@FAST
@given(seeds, any_shape)
def test_cagrad_with_c_zero_is_the_mean_gradient(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    torch.testing.assert_close(direction(CAGrad(shape[0], c=0.0), jacobian), jacobian.mean(dim=0))


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seeds, independent, st.floats(0.1, 1.0))
def test_cagrad_maximises_the_worst_task_within_its_ball(seed: int, shape: tuple[int, int], c: float) -> None:
    jacobian = random_jacobian(seed, *shape)
    mean = jacobian.mean(dim=0)
    d = direction(CAGrad(shape[0], c=c, rescale=False), jacobian)
    radius = c * float(mean.norm())
    assert abs(float((d - mean).norm()) - radius) <= 1e-6 * radius
    worst = float((jacobian @ d).min())
    generator = torch.Generator().manual_seed(seed)
    for _ in range(200):
        offset = torch.randn(shape[1], generator=generator, dtype=torch.float64)
        candidate = mean + radius * torch.rand((), generator=generator, dtype=torch.float64) * offset / offset.norm()
        assert float((jacobian @ candidate).min()) <= worst + 1e-6 * float(jacobian.norm() * mean.norm())


@FAST
@given(seeds, independent)
def test_imtlg_has_equal_projections_on_every_unit_gradient(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    c = IMTLG(shape[0]).coefficients(jacobian @ jacobian.T)
    assert abs(float(c.sum()) - 1) < 1e-8
    projections = (jacobian / jacobian.norm(dim=1, keepdim=True)) @ (c @ jacobian)
    torch.testing.assert_close(projections, projections[0].expand_as(projections), atol=1e-8, rtol=1e-7)


@FAST
@given(seeds, independent)
def test_nashmtl_alpha_satisfies_the_bargaining_condition(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    alpha = NashMTL(shape[0]).coefficients(gram)
    assert torch.all(alpha > 0)
    torch.testing.assert_close(gram @ alpha, alpha.reciprocal(), rtol=1e-6, atol=0)
    # Hence |d|² = αᵀGα = K whatever the gradients' scale.
    scaled = NashMTL(shape[0]).coefficients(1e6 * gram)
    torch.testing.assert_close(scaled @ (1e6 * gram) @ scaled, torch.tensor(float(shape[0]), dtype=gram.dtype))


def test_nashmtl_by_hand_orthogonal_gradients() -> None:
    # G = diag(1, 4): α_k² G_kk = 1 → α = (1, ½).
    # The default (the paper's system on the raw G, which the authors' normalised solver also solves).
    gram = torch.diag(torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(NashMTL(2).coefficients(gram), torch.tensor([1.0, 0.5]))


@FAST
@given(seeds, any_shape)
def test_upgrad_conflicts_with_no_task(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    d = direction(UPGrad(shape[0]), jacobian)
    assert torch.all(jacobian @ d >= -1e-8 * float((jacobian**2).sum()))


def test_upgrad_by_hand() -> None:
    # v_1 = argmin_{u ≥ 0} (1, u)G(1, u)ᵀ = 1 − 2u + 4u² → u = ¼; v_2 = argmin (u, 1): u² − 2u + 4 → u = 1.
    c = UPGrad(2).coefficients(torch.tensor([[1.0, -1.0], [-1.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(c, torch.tensor([1.0, 0.625], dtype=torch.float64))
    # Without conflict every projection is the gradient itself: the mean.
    torch.testing.assert_close(UPGrad(3).coefficients(torch.eye(3)), torch.full((3,), 1 / 3))


@FAST
@given(seeds, independent)
def test_alignedmtl_aligned_system_is_perfectly_conditioned(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    c = AlignedMTL(shape[0]).coefficients(gram)
    # c = B·1 with B symmetric; the aligned gradients B·J have Gram B G B = λ_min·I.
    smallest = torch.linalg.eigvalsh(gram).min()
    values, vectors = torch.linalg.eigh(gram)
    balance = smallest.sqrt() * (vectors * values.rsqrt()) @ vectors.T
    torch.testing.assert_close(c, balance.sum(dim=1))
    torch.testing.assert_close(balance @ gram @ balance, smallest * torch.eye(shape[0], dtype=torch.float64))


SYMMETRIC = [MGDA, CAGrad, IMTLG, NashMTL, AlignedMTL, UPGrad]


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seeds, independent, st.randoms(use_true_random=False))
def test_symmetric_methods_are_permutation_invariant(seed: int, shape: tuple[int, int], rng) -> None:
    jacobian = random_jacobian(seed, *shape)
    order = list(range(shape[0]))
    rng.shuffle(order)
    for cls in SYMMETRIC:
        method = cls(shape[0])
        torch.testing.assert_close(
            direction(method, jacobian[order]), direction(method, jacobian), rtol=1e-6, atol=1e-9, msg=cls.__name__
        )
