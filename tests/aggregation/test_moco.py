"""MoCo: without tracking and with a constant step it converges to MGDA's weights; its state travels in state_dict."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_gradients import random_jacobian, seeds

from taskbalance.aggregation import MGDA, MoCo, create
from taskbalance.aggregation.moco import project_onto_simplex

FAST = settings(max_examples=8, deadline=None, derandomize=True)


@FAST
@given(seeds, st.integers(2, 4))
def test_untracked_constant_steps_converge_to_mgda(seed: int, num_tasks: int) -> None:
    jacobian = random_jacobian(seed, num_tasks, num_tasks + 8, spread=0.5)
    gram = jacobian @ jacobian.T
    step = 1.0 / float(torch.linalg.eigvalsh(gram).max())
    method = MoCo(num_tasks, beta=1.0, beta_sigma=0.0, gamma=step, gamma_sigma=0.0).double()
    ones = torch.ones(num_tasks, dtype=torch.float64)
    for _ in range(800):
        (direction,), weights = method.aggregate([jacobian], ones)
    expected = MGDA(num_tasks).coefficients(gram)
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(direction, expected @ jacobian, atol=1e-6 * float(jacobian.abs().max()), rtol=0)


def test_tracking_follows_the_moving_average_with_decaying_rate() -> None:
    method = MoCo(2, beta=0.5, beta_sigma=0.5).double()
    first = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    second = torch.tensor([[3.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    ones = torch.ones(2, dtype=torch.float64)
    method.aggregate([first], ones)
    torch.testing.assert_close(method.tracked[0], first)  # starts at the first gradients
    (direction,), weights = method.aggregate([second], ones)
    rate = 0.5 / 2**0.5
    torch.testing.assert_close(method.tracked[0], first - rate * (first - second))
    torch.testing.assert_close(direction, weights @ method.tracked[0])
    assert abs(float(weights.sum()) - 1) < 1e-12 and bool((weights >= 0).all())


def test_resume_from_state_dict_gives_identical_steps() -> None:
    batches = [random_jacobian(seed, 3, 6, spread=0.5) for seed in range(7)]
    ones = torch.ones(3, dtype=torch.float64)
    method = MoCo(3).double()
    for jacobian in batches[:3]:
        method.aggregate([jacobian], ones)
    resumed = MoCo(3).double()
    resumed.load_state_dict(method.state_dict())
    assert resumed.steps == 3
    for jacobian in batches[3:]:
        (expected,), expected_weights = method.aggregate([jacobian], ones)
        (direction,), weights = resumed.aggregate([jacobian], ones)
        torch.testing.assert_close(direction, expected, rtol=0, atol=0)
        torch.testing.assert_close(weights, expected_weights, rtol=0, atol=0)


def test_normalized_gradients_have_the_length_of_their_loss() -> None:
    method = MoCo(2, beta=1.0, normalize_gradients=True).double()
    losses = torch.tensor([2.0, 0.5], dtype=torch.float64)
    scales = method.task_scales(losses, torch.ones(2, dtype=torch.float64))
    jacobian = torch.tensor([[3.0, 4.0], [0.0, -10.0]], dtype=torch.float64)
    method.aggregate([jacobian], scales)
    torch.testing.assert_close(method.tracked[0].norm(dim=1), losses)
    with pytest.raises(ValueError, match=r"MoCo: the gradient of task 1 is zero .*; normalize_gradients divides"):
        method.aggregate([torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)], scales)


@FAST
@given(seeds, st.integers(1, 7))
def test_simplex_projection_is_the_closest_point_of_the_simplex(seed: int, size: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    vector = 3 * torch.randn(size, generator=generator, dtype=torch.float64)
    projected = project_onto_simplex(vector)
    assert bool((projected >= 0).all()) and abs(float(projected.sum()) - 1) < 1e-12
    # Optimality: (v − p)·(q − p) ≤ 0 for every point q of the simplex (checked on its vertices).
    assert bool((((torch.eye(size, dtype=torch.float64) - projected) @ (vector - projected)) <= 1e-12).all())


@pytest.mark.parametrize(
    "bad", [{"beta": 0.0}, {"beta": 1.5}, {"gamma": 0.0}, {"rho": -1.0}, {"beta_sigma": -0.5}, {"gamma": "0.1"}]
)
def test_bad_hyperparameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=f"MoCo: {next(iter(bad))} must be"):
        create("moco", 2, **bad)
