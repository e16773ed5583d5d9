"""IMTL-L (Liu et al. 2021): Σ e^s·L − s with fixed point e^s = 1/L."""

import pytest
import torch

from taskbalance.weighting import IMTLL


def test_fixed_point_is_inverse_loss() -> None:
    losses = torch.tensor([0.25, 1.0, 4.0])
    method = IMTLL(3)
    optimizer = torch.optim.Adam(method.parameters(), lr=0.05)
    for _ in range(1500):
        optimizer.zero_grad()
        method(losses).backward()
        optimizer.step()
    torch.testing.assert_close(torch.exp(method.log_scales.detach()), 1.0 / losses, rtol=1e-3, atol=0.0)
    # At the fixed point every scaled loss is 1.
    torch.testing.assert_close(method.last_weights * losses, torch.ones(3), rtol=2e-3, atol=0.0)


def test_total_and_weights_by_hand() -> None:
    method = IMTLL(2)
    with torch.no_grad():
        method.log_scales.copy_(torch.tensor([1.0, -2.0]))
    total = method(torch.tensor([3.0, 5.0], dtype=torch.float64))
    expected = 2.718281828459045 * 3.0 + 0.1353352832366127 * 5.0 - (1.0 - 2.0)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert method.last_weights.tolist() == pytest.approx([2.718281828459045, 0.1353352832366127], rel=1e-6)


def test_scale_gradient_is_loss_times_weight_minus_one() -> None:
    method = IMTLL(2)
    method(torch.tensor([3.0, 0.5])).backward()
    assert method.log_scales.grad is not None
    assert method.log_scales.grad.tolist() == pytest.approx([2.0, -0.5])
