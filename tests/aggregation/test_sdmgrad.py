"""SDMGrad: λ = 0 is MGDA, λ → ∞ the mean; in between, the minimiser of |g_w + λg₀|² over the simplex."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_gradients import random_jacobian, seeds

from taskbalance.aggregation import MGDA, SDMGrad, create

FAST = settings(max_examples=30, deadline=None, derandomize=True)
any_shape = st.tuples(st.integers(2, 6), st.integers(1, 12))


@FAST
@given(seeds, any_shape)
def test_lambda_zero_is_mgda(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    torch.testing.assert_close(
        SDMGrad(shape[0], reduction="mean", lamda=0.0).coefficients(gram), MGDA(shape[0]).coefficients(gram)
    )


@FAST
@given(seeds, any_shape)
def test_large_lambda_tends_to_the_mean(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    mean = torch.full((shape[0],), 1.0 / shape[0], dtype=torch.float64)
    for lamda in (1e2, 1e4, 1e6):
        # c = (w + λ/K)/(1 + λ) with w on the simplex: |c − 1/K| ≤ 1/(1 + λ).
        gap = (SDMGrad(shape[0], reduction="mean", lamda=lamda).coefficients(gram) - mean).abs().max()
        assert float(gap) <= 1 / (1 + lamda)
    assert float(gap) > 0 or shape[0] == 1


@FAST
@given(seeds, any_shape, st.floats(0.05, 5.0))
def test_direction_minimises_the_regularised_norm_over_the_simplex(
    seed: int, shape: tuple[int, int], lamda: float
) -> None:
    num_tasks = shape[0]
    jacobian = random_jacobian(seed, *shape)
    gram = jacobian @ jacobian.T
    plain = SDMGrad(num_tasks, reduction="mean", lamda=lamda, rescale=False).coefficients(gram)
    rescaled = SDMGrad(num_tasks, reduction="mean", lamda=lamda).coefficients(gram)
    torch.testing.assert_close(rescaled, plain / (1 + lamda))
    weights = plain - lamda / num_tasks  # the paper's direction g_w + λg₀
    assert bool((weights >= -1e-12).all()) and abs(float(weights.sum()) - 1) < 1e-9
    best = float(plain @ gram @ plain)
    generator = torch.Generator().manual_seed(seed)
    exponential = -torch.rand(200, num_tasks, generator=generator, dtype=torch.float64).log()
    others = exponential / exponential.sum(dim=1, keepdim=True)  # uniform on the simplex
    candidates = torch.cat([others, torch.eye(num_tasks, dtype=torch.float64)]) + lamda / num_tasks
    values = ((candidates @ gram) * candidates).sum(dim=1)
    assert bool((values >= best - 1e-9 * float(gram.diagonal().max())).all())


def test_bad_lambda_is_refused() -> None:
    for bad in (-0.1, float("inf"), "0.3"):
        with pytest.raises(ValueError, match="SDMGrad: lamda must be"):
            create("sdmgrad", 2, lamda=bad)
