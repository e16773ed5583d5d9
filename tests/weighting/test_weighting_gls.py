"""GLS (Chennupati et al. 2019): the geometric mean of the losses, in log space."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbalance.weighting import GLS

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@PROPERTY
@given(losses=st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=6))
def test_total_is_the_geometric_mean(losses: list[float]) -> None:
    method = GLS(len(losses))
    total = method(torch.tensor(losses, dtype=torch.float64))
    gm = math.prod(losses) ** (1 / len(losses))
    assert float(total) == pytest.approx(gm, rel=1e-10)
    assert method.last_weights.tolist() == pytest.approx([gm / len(losses) / loss for loss in losses], rel=1e-10)


def test_gradient_is_gm_over_k_times_sum_of_relative_gradients() -> None:
    torch.manual_seed(0)
    inputs = torch.randn(32, 5, dtype=torch.float64)
    weight = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def task_losses() -> torch.Tensor:
        out = inputs @ weight
        return torch.stack([(out[:, 0] ** 2).mean(), (out[:, 1] - 2.0).abs().mean(), torch.exp(out[:, 2]).mean()])

    (gls_grad,) = torch.autograd.grad(GLS(3)(task_losses()), weight)
    losses = task_losses()
    per_task = [torch.autograd.grad(losses[k], weight, retain_graph=True)[0] for k in range(3)]
    values = losses.detach().tolist()
    gm = math.prod(values) ** (1 / 3)
    expected = gm / 3 * sum(grad / value for grad, value in zip(per_task, values, strict=True))
    torch.testing.assert_close(gls_grad, expected, rtol=1e-10, atol=1e-12)


def test_many_small_losses_do_not_underflow() -> None:
    # Π of 60 losses of 1e-10 is 1e-600, below float64's range; the log-space mean is exact.
    method = GLS(60)
    total = method(torch.full((60,), 1e-10, dtype=torch.float64))
    assert float(total) == pytest.approx(1e-10, rel=1e-9)
