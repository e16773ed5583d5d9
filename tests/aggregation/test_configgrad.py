"""ConFIG: the direction has equal positive cosines with every task gradient and the sum of their projections."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from random_gradients import random_jacobian, seeds
from torch import Tensor

from taskbalance.aggregation import ConFIG

FAST = settings(max_examples=40, deadline=None, derandomize=True)
independent = st.integers(2, 6).flatmap(lambda k: st.tuples(st.just(k), st.integers(k, 14)))


def direction(jacobian: Tensor) -> Tensor:
    (result,), _ = ConFIG(jacobian.shape[0]).aggregate([jacobian], torch.ones(jacobian.shape[0], dtype=jacobian.dtype))
    return result


@FAST
@given(seeds, independent)
def test_equal_positive_cosines_with_every_task_gradient(seed: int, shape: tuple[int, int]) -> None:
    jacobian = random_jacobian(seed, *shape)
    d = direction(jacobian)
    cosines = (jacobian @ d) / (jacobian.norm(dim=1) * d.norm())
    assert float(cosines.min()) > 0
    torch.testing.assert_close(cosines, cosines.mean().expand_as(cosines), atol=1e-8, rtol=0)
    # Its length is the sum of the task gradients' projections on its direction.
    unit = d / d.norm()
    torch.testing.assert_close(d.norm(), (jacobian @ unit).sum())


@FAST
@given(seeds, independent, st.floats(0.01, 100.0))
def test_the_direction_does_not_depend_on_per_task_scales_but_its_length_does(
    seed: int, shape: tuple[int, int], factor: float
) -> None:
    jacobian = random_jacobian(seed, *shape)
    d = direction(jacobian)
    scaled = jacobian.clone()
    scaled[0] *= factor
    e = direction(scaled)
    torch.testing.assert_close(e / e.norm(), d / d.norm())
    # Σ_k |g_k|·cos: only task 0's projection changes, by the factor.
    cosine = float(jacobian[0] @ d / (jacobian[0].norm() * d.norm()))
    torch.testing.assert_close(
        e.norm() - d.norm(), torch.tensor((factor - 1) * cosine * float(jacobian[0].norm()), dtype=torch.float64)
    )


def test_degenerate_gradients_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"ConFIG: the gradient of task 1 \('depth'\) is zero"):
        ConFIG(2, task_names=["seg", "depth"]).coefficients(torch.diag(torch.tensor([1.0, 0.0])))
    opposite = torch.tensor([[1.0, -2.0], [-2.0, 4.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="ConFIG: no direction has equal positive cosines"):
        ConFIG(2).coefficients(opposite)
    # Three gradients in a plane, positively spanning it: no direction makes equal positive angles with all three.
    plane = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64)
    with pytest.raises(ValueError, match="ConFIG: no direction"):
        ConFIG(3).coefficients(plane @ plane.T)


def test_identical_gradients_give_that_gradient_times_k() -> None:
    jacobian = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(direction(jacobian), 2 * jacobian[0])
