"""GradVac: a pair's cosine is raised exactly to its target when below it; the EMA targets travel in state_dict."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_gradients import random_jacobian, seeds
from torch import Tensor

from taskbalance.aggregation import GradVac, PCGrad, create

FAST = settings(max_examples=40, deadline=None, derandomize=True)


def cosine(a: Tensor, b: Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


@FAST
@given(seeds, st.integers(2, 10), st.floats(-0.9, 0.9))
def test_a_cosine_below_its_target_is_raised_exactly_to_it(seed: int, size: int, target: float) -> None:
    jacobian = random_jacobian(seed, 2, size)
    method = GradVac(2, beta=0.1).double()
    with torch.no_grad():
        method.targets.fill_(target)
    before = cosine(jacobian[0], jacobian[1])
    mix = method.vaccinated(jacobian @ jacobian.T)
    corrected = mix @ jacobian
    for i, j in ((0, 1), (1, 0)):
        if before < target:
            assert math.isclose(cosine(corrected[i], jacobian[j]), target, abs_tol=1e-9)
            assert float(mix[i, j]) > 0  # some of g_j was added
        else:
            torch.testing.assert_close(corrected[i], jacobian[i])  # nothing to do
    # Every target moves by β towards the cosine observed before the correction (the same for both rows at K = 2).
    expected = 0.9 * target + 0.1 * before
    torch.testing.assert_close(method.targets[0, 1], torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(method.targets[1, 0], torch.tensor(expected, dtype=torch.float64))


@FAST
@given(seeds, st.integers(2, 6), st.integers(1, 12))
def test_first_step_with_zero_targets_is_pcgrad_with_the_same_seed(seed: int, num_tasks: int, size: int) -> None:
    jacobian = random_jacobian(seed, num_tasks, size)
    gram = jacobian @ jacobian.T
    if bool((torch.diagonal(gram) == 0).any()):
        return
    torch.testing.assert_close(
        GradVac(num_tasks, seed=seed % 1000).coefficients(gram), PCGrad(num_tasks, seed=seed % 1000).coefficients(gram)
    )


def test_resume_from_state_dict_gives_identical_steps() -> None:
    batches = [random_jacobian(seed, 4, 9) for seed in range(8)]
    method = GradVac(4, beta=0.3, seed=5).double()
    for jacobian in batches[:3]:
        method.coefficients(jacobian @ jacobian.T)
    resumed = GradVac(4, beta=0.3, seed=99).double()
    resumed.load_state_dict(method.state_dict())
    torch.testing.assert_close(resumed.targets, method.targets)
    assert bool((method.targets != 0).any())
    for jacobian in batches[3:]:
        gram = jacobian @ jacobian.T
        torch.testing.assert_close(resumed.coefficients(gram), method.coefficients(gram), rtol=0, atol=0)
    torch.testing.assert_close(resumed.targets, method.targets, rtol=0, atol=0)


def test_degenerate_gradients_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"GradVac: the gradient of task 0 \('seg'\) is zero"):
        GradVac(2, task_names=["seg", "depth"]).coefficients(torch.diag(torch.tensor([0.0, 1.0])))
    method = GradVac(2).double()
    with torch.no_grad():
        method.targets.fill_(1.0)
    with pytest.raises(ValueError, match=r"GradVac: the cosine .* below its target 1, which no added amount reaches"):
        method.coefficients(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))


def test_a_gradient_cancelled_by_its_opposite_stays_zero_and_keeps_its_targets() -> None:
    jacobian = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    method = GradVac(3).double()
    mix = method.vaccinated(jacobian @ jacobian.T)
    corrected = mix @ jacobian
    assert torch.isfinite(method.targets).all()
    # In either order g_0 and g_1 (cosine −1 < target 0) cancel each other to 0, which no later pair changes; g_2 is
    # orthogonal to both (cosine 0, not below 0) and stays as it is.
    torch.testing.assert_close(corrected, torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=torch.float64))


@pytest.mark.parametrize("beta", [0.0, 1.5, float("nan")])
def test_bad_beta_is_refused(beta: float) -> None:
    with pytest.raises(ValueError, match="GradVac: beta must be"):
        create("gradvac", 2, beta=beta)
