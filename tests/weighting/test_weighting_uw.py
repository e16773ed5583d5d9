"""UW (Kendall et al. 2018): learnable log-variances and their optima."""

import math

import pytest
import torch

from taskbalance.weighting import UW


def minimise_over_log_variances(method: UW, losses: torch.Tensor, steps: int = 1500) -> None:
    optimizer = torch.optim.Adam(method.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        method(losses).backward()
        optimizer.step()


def test_regression_optimum_is_exp_s_equal_to_the_loss() -> None:
    losses = torch.tensor([0.2, 1.0, 6.0])
    method = UW(3)
    minimise_over_log_variances(method, losses)
    torch.testing.assert_close(torch.exp(method.log_variances.detach()), losses, rtol=1e-3, atol=0.0)


def test_classification_optimum_is_exp_s_equal_to_twice_the_loss() -> None:
    # d/ds [e^(−s)·L + ½·s] = −e^(−s)·L + ½ = 0  ⇒  e^s = 2L.
    losses = torch.tensor([0.2, 1.0, 6.0])
    method = UW(3, kinds=["classification", "regression", "classification"])
    minimise_over_log_variances(method, losses)
    expected = torch.tensor([0.4, 1.0, 12.0])
    torch.testing.assert_close(torch.exp(method.log_variances.detach()), expected, rtol=1e-3, atol=0.0)


def test_total_and_weights_by_hand() -> None:
    method = UW(2, init=-0.5, kinds=["classification", "regression"])
    total = method(torch.tensor([2.0, 3.0], dtype=torch.float64))
    e = math.exp(0.5)
    assert total.item() == pytest.approx(e * 2.0 + 0.5 * e * 3.0 + 0.5 * (-1.0), rel=1e-6)
    assert method.last_weights.tolist() == pytest.approx([e, 0.5 * e], rel=1e-6)


def test_default_is_regression_form_with_zero_init() -> None:
    method = UW(3)
    assert method.kinds == ["regression"] * 3
    assert method.log_variances.tolist() == [0.0, 0.0, 0.0]
    assert method.last_weights.tolist() == [0.5, 0.5, 0.5]


def test_log_variances_are_parameters_for_the_optimizer() -> None:
    method = UW(3)
    assert [name for name, _ in method.named_parameters()] == ["log_variances"]


def test_bad_kind_names_the_task() -> None:
    with pytest.raises(ValueError, match=r"task 1 \('depth'\).*'segmentation'"):
        UW(2, kinds=["regression", "segmentation"], task_names=["seg", "depth"])
    with pytest.raises(ValueError, match="got 1 kinds"):
        UW(2, kinds=["regression"])
    with pytest.raises(ValueError, match="init"):
        UW(2, init=math.nan)
