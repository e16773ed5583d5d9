"""SI: Σ log L_k, whose gradient is UW-O's."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbalance.methods import create
from taskbalance.weighting import SI, UWO

PROPERTY = settings(max_examples=30, deadline=None, derandomize=True, database=None)


def random_losses(seed: int, weight: torch.Tensor) -> torch.Tensor:
    """Three positive losses of different forms and scales from one shared linear map."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(16, 4, generator=generator, dtype=torch.float64)
    scales = torch.exp(3 * torch.randn(3, generator=generator, dtype=torch.float64))
    out = inputs @ weight
    raw = torch.stack([(out[:, 0] ** 2).mean() + 0.1, (out[:, 1] - 1.0).abs().mean(), torch.exp(out[:, 2]).mean()])
    return scales * raw


@PROPERTY
@given(st.integers(0, 2**31 - 1))
def test_gradient_equals_uwo_gradient_on_random_losses(seed: int) -> None:
    weight = torch.randn(4, 3, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    weight.requires_grad_(True)
    (si_grad,) = torch.autograd.grad(SI(3)(random_losses(seed, weight)), weight)
    (uwo_grad,) = torch.autograd.grad(UWO(3)(random_losses(seed, weight)), weight)
    torch.testing.assert_close(si_grad, uwo_grad, rtol=1e-10, atol=1e-12)


def test_total_is_the_sum_of_log_losses_and_weights_are_inverse_losses() -> None:
    method = SI(3)
    total = method(torch.tensor([0.5, 2.0, 8.0]))
    assert float(total) == pytest.approx(float(torch.log(torch.tensor(8.0))))
    assert method.last_weights.tolist() == [2.0, 0.5, 0.125]


def test_rescaling_a_loss_shifts_the_total_by_a_constant() -> None:
    losses = torch.tensor([0.3, 1.7])
    shifted = SI(2)(losses * torch.tensor([10.0, 1.0])) - SI(2)(losses)
    assert float(shifted) == pytest.approx(float(torch.log(torch.tensor(10.0))))


def test_step_fills_grads_like_uwo() -> None:
    weight = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    create("si", 3).step(random_losses(7, weight))
    si_grad = weight.grad.clone()
    weight.grad = None
    create("uwo", 3).step(random_losses(7, weight))
    torch.testing.assert_close(si_grad, weight.grad)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_non_positive_loss_is_refused_naming_method_and_task(bad: float) -> None:
    with pytest.raises(ValueError, match=r"SI: the loss of task 1 \('depth'\)"):
        SI(2, task_names=["seg", "depth"])(torch.tensor([1.0, bad]))
