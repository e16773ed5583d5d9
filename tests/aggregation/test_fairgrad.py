"""FairGrad: the weights solve (Gw)_k = w_k^(−1/α); α = 1 is Nash-MTL's bargaining solution."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_gradients import random_jacobian, seeds

from taskbalance.aggregation import FairGrad, NashMTL, create

FAST = settings(max_examples=30, deadline=None, derandomize=True)
independent = st.integers(2, 5).flatmap(lambda k: st.tuples(st.just(k), st.integers(k + 1, 12)))


@FAST
@given(seeds, independent, st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0]))
def test_weights_solve_the_fixed_point_equations(seed: int, shape: tuple[int, int], alpha: float) -> None:
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    weights = FairGrad(shape[0], reduction="mean", alpha=alpha).coefficients(gram)
    assert torch.all(weights > 0)
    utilities = jacobian @ (weights @ jacobian)  # g_k·d
    torch.testing.assert_close(utilities, weights.pow(-1 / alpha), rtol=1e-8, atol=0)


@FAST
@given(seeds, independent)
def test_alpha_one_is_the_nash_bargaining_solution(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    fair = FairGrad(shape[0], reduction="mean", alpha=1.0).coefficients(gram)
    nash = NashMTL(shape[0], max_norm=0.0).coefficients(gram)
    torch.testing.assert_close(fair, nash, rtol=1e-7, atol=0)


def test_alpha_near_one_approaches_nash_and_the_scale_law_holds() -> None:
    jacobian = random_jacobian(3, 3, 7)
    gram = jacobian @ jacobian.T
    nash = NashMTL(3, max_norm=0.0).coefficients(gram)
    gaps = [
        float((FairGrad(3, reduction="mean", alpha=1 + eps).coefficients(gram) - nash).abs().max())
        for eps in (0.1, 0.01, 0.001)
    ]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3 * float(nash.abs().max())
    # Gradients × s: the direction is multiplied by s^((1−α)/(1+α)).
    alpha, s = 3.0, 10.0
    direction = FairGrad(3, reduction="mean", alpha=alpha).coefficients(gram) @ jacobian
    scaled = FairGrad(3, reduction="mean", alpha=alpha).coefficients(gram * s**2) @ (jacobian * s)
    torch.testing.assert_close(scaled, direction * s ** ((1 - alpha) / (1 + alpha)))


def test_small_alpha_tends_to_the_sum_of_orthogonal_gradients() -> None:
    gram = torch.diag(torch.tensor([1.0, 9.0], dtype=torch.float64))  # w_k = G_kk^(−α/(α+1)) → 1
    torch.testing.assert_close(
        FairGrad(2, reduction="mean", alpha=0.01).coefficients(gram),
        torch.ones(2, dtype=torch.float64),
        rtol=0.03,
        atol=0,
    )


def test_degenerate_gradients_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"FairGrad: the gradient of task 1 \('depth'\) is zero"):
        FairGrad(2, task_names=["seg", "depth"]).coefficients(torch.diag(torch.tensor([1.0, 0.0])))
    opposite = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="FairGrad: no positive solution"):
        FairGrad(2).coefficients(opposite)
    with pytest.raises(ValueError, match="FairGrad: the gradient of task 0 is not finite"):
        FairGrad(2).coefficients(torch.diag(torch.tensor([float("nan"), 1.0])))


@pytest.mark.parametrize("bad", [{"alpha": 0.0}, {"alpha": -1.0}, {"alpha": float("inf")}, {"iterations": 0}])
def test_bad_hyperparameters_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"FairGrad: {next(iter(bad))} must be"):
        create("fairgrad", 2, **bad)


@FAST
@given(seeds, st.sampled_from([0.5, 1.0, 2.0]))
def test_float32_gradients_are_solved_without_a_spurious_error(seed: int, alpha: float) -> None:
    jacobian = random_jacobian(seed, 4, 64).float()
    weights = FairGrad(4, reduction="mean", alpha=alpha).coefficients(jacobian @ jacobian.T)
    assert weights.dtype == torch.float32
    utilities = jacobian.double() @ (weights.double() @ jacobian.double())
    torch.testing.assert_close(utilities, weights.double().pow(-1 / alpha), rtol=1e-4, atol=0)
