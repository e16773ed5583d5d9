"""ExcessMTL: weights follow the estimated excess risks; all state in state_dict."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from taskbalance.aggregation import ExcessMTL, create
from taskbalance.methods import MethodError

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None)


def quadratic_losses(theta: Tensor, centres: Tensor, scales: Tensor) -> Tensor:
    """L_k = s_k·|θ − c_k|² (optimum 0 at θ = c_k)."""
    return scales * (theta[None, :] - centres).pow(2).sum(dim=1)


def step_at(method: ExcessMTL, theta_value: Tensor, centres: Tensor, scales: Tensor) -> Tensor:
    theta = torch.nn.Parameter(theta_value.clone())
    method.step(quadratic_losses(theta, centres, scales) + 0.0, shared_parameters=[theta])
    return theta.grad


@FAST
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.integers(0, 4))
def test_a_task_at_its_optimum_loses_weight(seed: int, num_tasks: int, optimal: int) -> None:
    optimal %= num_tasks
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_tasks, 6, generator=generator, dtype=torch.float64)
    scales = torch.exp(2 * torch.randn(num_tasks, generator=generator, dtype=torch.float64))
    method = ExcessMTL(num_tasks, step_size=0.5).double()
    step_at(method, torch.randn(6, generator=generator, dtype=torch.float64) + 3.0, centres, scales)  # sets E⁰
    before = method.last_weights.clone()
    torch.testing.assert_close(before, torch.full((num_tasks,), 1 / num_tasks, dtype=torch.float64))
    step_at(method, centres[optimal], centres, scales)  # task `optimal` at its optimum: zero gradient, E = 0
    after = method.last_weights
    assert float(after[optimal]) < float(before[optimal])
    # Every other task is away from its optimum (E > 0): the converged task ends with the smallest weight.
    others = [k for k in range(num_tasks) if k != optimal]
    assert torch.all(after[others] > after[optimal])
    assert float(after.sum()) == pytest.approx(1.0)


def test_weights_follow_exponentiated_excess_ratios_by_hand() -> None:
    method = ExcessMTL(2, step_size=1.0)
    # Step 1: g = ((2, 0), (0, 1)); S = g²; E = ½·(4/2, 1/1) = (1, ½) = E⁰.
    method.aggregate([torch.tensor([[2.0, 0.0], [0.0, 1.0]])], torch.ones(2))
    # Step 2: g = ((2, 0), (0, 1)) again; S = 2g²; E = E⁰/√2; α ∝ ½·exp(1/√2) each → uniform.
    _, weights = method.aggregate([torch.tensor([[2.0, 0.0], [0.0, 1.0]])], torch.ones(2))
    torch.testing.assert_close(weights, torch.tensor([0.5, 0.5]))
    # Step 3: task 1's gradient doubles: S_1 = 1 + 1 + 4 = 6, E_1 = ½·4/√6; task 0: S_0 = 12, E_0 = ½·4/√12.
    (direction,), weights = method.aggregate([torch.tensor([[2.0, 0.0], [0.0, 2.0]])], torch.ones(2))
    ratio = torch.tensor([2 / 12**0.5, (2 / 6**0.5) / 0.5], dtype=torch.float64)
    log_alpha = torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64)) + ratio
    expected = torch.softmax(log_alpha, dim=0).float()
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(direction, torch.tensor([2 * expected[0], 2 * expected[1]]))


def test_warmup_keeps_uniform_weights_and_averages_the_baseline() -> None:
    method = ExcessMTL(2, step_size=1.0, warmup_steps=2)
    pieces = [torch.tensor([[1.0], [1.0]])]
    for _ in range(2):
        _, weights = method.aggregate(pieces, torch.ones(2))
        torch.testing.assert_close(weights, torch.tensor([0.5, 0.5]))
    # E over the warm-up: ½·(1/1, 1/√2) for both tasks → E⁰ = ½·(1 + 1/√2)/2.
    expected = 0.5 * (1 + 2**-0.5) / 2
    torch.testing.assert_close(method.baseline, torch.full((2,), expected, dtype=torch.float64))


def test_resume_from_state_dict_gives_identical_results() -> None:
    generator = torch.Generator().manual_seed(3)
    steps = [[torch.randn(3, 4, generator=generator), torch.randn(3, 2, 2, generator=generator)] for _ in range(5)]
    scales = torch.tensor([1.0, 0.5, 2.0])
    uninterrupted = create("excessmtl", 3, step_size=0.3)
    for pieces in steps:
        expected, expected_weights = uninterrupted.aggregate(pieces, scales)

    first = create("excessmtl", 3, step_size=0.3)
    for pieces in steps[:3]:
        first.aggregate(pieces, scales)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = create("excessmtl", 3, step_size=0.3)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for pieces in steps[3:]:
        directions, weights = resumed.aggregate(pieces, scales)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=0)
    for got, want in zip(directions, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_zero_gradient_at_the_baseline_step_is_refused_naming_the_task() -> None:
    method = ExcessMTL(2, task_names=["seg", "depth"])
    with pytest.raises(ValueError, match=r"ExcessMTL: the baseline excess-risk estimate E⁰ of task 1 \('depth'\)"):
        method.aggregate([torch.tensor([[1.0, 0.0], [0.0, 0.0]])], torch.ones(2))


def test_changing_shared_shapes_are_refused() -> None:
    method = ExcessMTL(2)
    method.aggregate([torch.ones(2, 3)], torch.ones(2))
    with pytest.raises(ValueError, match="ExcessMTL: the shared gradients changed shape"):
        method.aggregate([torch.ones(2, 4)], torch.ones(2))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "representation"}, "ExcessMTL: supports mode 'parameters' only"),
        ({"step_size": 0.0}, "ExcessMTL: step_size"),
        ({"warmup_steps": -1}, "ExcessMTL: warmup_steps"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(MethodError, match=message):
        create("excessmtl", 2, **options)
