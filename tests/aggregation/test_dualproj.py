"""DualProj: the mean gradient projected onto the dual cone of the task gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from taskbalance.aggregation import DualProj, UPGrad, create
from taskbalance.aggregation.solvers import dual_cone_coefficients

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)
seeds = st.integers(0, 2**31 - 1)
shapes = st.tuples(st.integers(2, 6), st.integers(1, 12))  # K > P (dependent gradients) included


def random_jacobian(seed: int, num_tasks: int, size: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.randn(num_tasks, 1, generator=generator, dtype=torch.float64))
    return scales * torch.randn(num_tasks, size, generator=generator, dtype=torch.float64)


def direction(jacobian: Tensor) -> Tensor:
    ones = torch.ones(jacobian.shape[0], dtype=jacobian.dtype)
    (result,), _ = DualProj(jacobian.shape[0]).aggregate([jacobian], ones)
    return result


@FAST
@given(seeds, shapes)
def test_direction_conflicts_with_no_task(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    d = direction(jacobian)
    assert torch.all(jacobian @ d >= -1e-8 * float((jacobian**2).sum())), jacobian @ d


@FAST
@given(seeds, shapes)
def test_direction_is_the_projection_of_the_mean(seed: int, shape: tuple[int, int]) -> None:
    # Optimality of a projection onto a convex cone C: d ∈ C, (m − d)·d = 0 and (m − d)·x ≤ 0 for x ∈ C; the
    # task gradients' own projections (UPGrad's rows) are points of C to test the last one against.
    jacobian = random_jacobian(seed, *shape)
    mean = jacobian.mean(dim=0)
    d = direction(jacobian)
    scale = float((jacobian**2).sum())
    residual = mean - d
    assert abs(float(residual @ d)) <= 1e-8 * scale
    cone_points = dual_cone_coefficients(jacobian @ jacobian.T) @ jacobian
    assert torch.all(cone_points @ residual <= 1e-8 * scale)


@FAST
@given(seeds, st.integers(2, 5), st.integers(1, 10))
def test_mean_without_conflict_is_kept(seed: int, num_tasks: int, size: int) -> None:
    jacobian = random_jacobian(seed, num_tasks, size).abs()  # non-negative gradients never conflict
    jacobian[:, 0] += 1.0
    torch.testing.assert_close(direction(jacobian), jacobian.mean(dim=0))
    weights = DualProj(num_tasks).coefficients(jacobian @ jacobian.T)
    torch.testing.assert_close(weights, torch.full((num_tasks,), 1 / num_tasks, dtype=torch.float64))


def test_differs_from_upgrad_when_the_mean_conflicts() -> None:
    # g1 = (1, 0), g2 = (−3, 1): DualProj projects the mean (−1, ½) to (0, ½); UPGrad averages projections.
    jacobian = torch.tensor([[1.0, 0.0], [-3.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(direction(jacobian), torch.tensor([0.0, 0.5], dtype=torch.float64))
    (upgrad,), _ = UPGrad(2).aggregate([jacobian], torch.ones(2, dtype=torch.float64))
    assert not torch.allclose(upgrad, direction(jacobian))


def test_step_through_a_model_conflicts_with_no_task() -> None:
    torch.manual_seed(0)
    encoder = torch.nn.Linear(4, 3).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    targets = torch.randn(8, 3, dtype=torch.float64)
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    losses = torch.stack([(encoder(x)[:, k] * signs[k] - targets[:, k]).pow(2).mean() for k in range(3)])
    per_task = [torch.autograd.grad(losses[k], list(encoder.parameters()), retain_graph=True) for k in range(3)]
    method = create("dualproj", 3)
    method.step(losses, shared_parameters=list(encoder.parameters()))
    for grads in per_task:
        product = sum(float((g * p.grad).sum()) for g, p in zip(grads, encoder.parameters(), strict=True))
        assert product >= -1e-10


def test_non_finite_gram_is_refused_naming_the_method() -> None:
    with pytest.raises(ValueError, match="DualProj: the Gram matrix"):
        DualProj(2).coefficients(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]))
