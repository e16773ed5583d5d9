"""UW-O: Σ L_k / sg[L_k] — scale-invariant, gradient of Σ log L_k."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbalance.weighting import UWO

PROPERTY = settings(max_examples=30, deadline=None, derandomize=True, database=None)


def task_losses(weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Three positive losses of different forms from one shared linear map."""
    out = inputs @ weight
    return torch.stack([(out[:, 0] ** 2).mean() + 0.1, (out[:, 1] - 1.0).abs().mean(), torch.exp(out[:, 2]).mean()])


@PROPERTY
@given(scales=st.lists(st.floats(1e-3, 1e3), min_size=3, max_size=3))
def test_gradient_is_unchanged_when_each_loss_is_rescaled(scales: list[float]) -> None:
    torch.manual_seed(0)
    inputs = torch.randn(16, 4, dtype=torch.float64)
    weight = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    method = UWO(3)
    (plain,) = torch.autograd.grad(method(task_losses(weight, inputs)), weight)
    factors = torch.tensor(scales, dtype=torch.float64)
    (scaled,) = torch.autograd.grad(method(factors * task_losses(weight, inputs)), weight)
    torch.testing.assert_close(scaled, plain, rtol=1e-9, atol=1e-12)


def test_gradient_equals_that_of_the_sum_of_log_losses() -> None:
    torch.manual_seed(1)
    inputs = torch.randn(16, 4, dtype=torch.float64)
    weight = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (uwo_grad,) = torch.autograd.grad(UWO(3)(task_losses(weight, inputs)), weight)
    (log_grad,) = torch.autograd.grad(torch.log(task_losses(weight, inputs)).sum(), weight)
    torch.testing.assert_close(uwo_grad, log_grad, rtol=1e-12, atol=1e-14)


def test_weights_are_inverse_losses_and_total_is_k() -> None:
    method = UWO(3)
    total = method(torch.tensor([0.5, 2.0, 8.0]))
    assert method.last_weights.tolist() == [2.0, 0.5, 0.125]
    assert float(total) == pytest.approx(3.0)
