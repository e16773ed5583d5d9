"""UW-SO: the tempered softmax of inverse losses (Kirchdorfer et al. 2024)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbalance.weighting import UWSO

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)
losses_strategy = st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=6)


def reference_weights(losses: list[float], temperature: float) -> list[float]:
    logits = [1.0 / loss / temperature for loss in losses]
    top = max(logits)
    exps = [math.exp(logit - top) for logit in logits]
    return [e / sum(exps) for e in exps]


@PROPERTY
@given(losses=losses_strategy, temperature=st.floats(0.01, 100.0))
def test_weights_and_total_match_the_softmax_formula(losses: list[float], temperature: float) -> None:
    method = UWSO(len(losses), temperature=temperature)
    values = torch.tensor(losses, dtype=torch.float64)
    total = method(values)
    expected = reference_weights(losses, temperature)
    assert method.last_weights.tolist() == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert float(total) == pytest.approx(sum(w * loss for w, loss in zip(expected, losses, strict=True)), rel=1e-9)
    assert float(method.last_weights.sum()) == pytest.approx(1.0, abs=1e-12)


def test_known_two_task_weights() -> None:
    # softmax([1/1, 1/0.5] / 1) = softmax([1, 2]) = [1/(1+e), e/(1+e)]
    method = UWSO(2, temperature=1.0)
    method(torch.tensor([1.0, 0.5], dtype=torch.float64))
    e = math.e
    assert method.last_weights.tolist() == pytest.approx([1 / (1 + e), e / (1 + e)], rel=1e-12)


@PROPERTY
@given(losses=st.lists(st.floats(0.1, 10.0), min_size=2, max_size=6))
def test_large_temperature_tends_to_uniform(losses: list[float]) -> None:
    method = UWSO(len(losses), temperature=1e6)
    method(torch.tensor(losses, dtype=torch.float64))
    assert method.last_weights.tolist() == pytest.approx([1 / len(losses)] * len(losses), abs=1e-5)


@PROPERTY
@given(
    smallest=st.floats(0.01, 1.0),
    others=st.lists(st.floats(1.05, 100.0), min_size=1, max_size=5),
    position=st.integers(0, 5),
)
def test_small_temperature_puts_all_weight_on_the_smallest_loss(
    smallest: float, others: list[float], position: int
) -> None:
    # Every other loss is at least 5% larger, so 1/L_min − 1/L_k ≥ 0.0476/L_k ≥ 4.7e-4 and T = 1e-6 separates them.
    losses = [smallest * factor for factor in others]
    index = position % (len(losses) + 1)
    losses.insert(index, smallest)
    method = UWSO(len(losses), temperature=1e-6)
    method(torch.tensor(losses, dtype=torch.float64))
    expected = [0.0] * len(losses)
    expected[index] = 1.0
    assert method.last_weights.tolist() == pytest.approx(expected, abs=1e-12)


def test_huge_logits_do_not_overflow() -> None:
    # 1/(L·T) = 1e12: a naive exp overflows to inf and gives NaN weights.
    method = UWSO(3, temperature=1e-6)
    method(torch.tensor([1e-6, 2e-6, 1.0]))
    assert torch.isfinite(method.last_weights).all()
    assert method.last_weights.tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_no_gradient_flows_through_the_weights() -> None:
    # If ω depended on L through autograd, d total / d L_k would carry extra terms beyond ω_k.
    losses = torch.tensor([0.3, 1.7, 4.0], dtype=torch.float64, requires_grad=True)
    method = UWSO(3, temperature=0.5)
    method(losses).backward()
    assert losses.grad is not None
    assert torch.equal(losses.grad, method.last_weights)
    assert not method.last_weights.requires_grad


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan])
def test_temperature_must_be_positive_and_finite(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        UWSO(3, temperature=temperature)


@pytest.mark.parametrize("temperature", [1.0, 1e-3])
def test_a_subnormal_loss_gets_all_the_weight_instead_of_nan(temperature: float) -> None:
    method = UWSO(3, temperature=temperature)
    method(torch.tensor([1e-39, 0.5, 2.0]))  # 1/1e-39 overflows float32
    torch.testing.assert_close(method.last_weights, torch.tensor([1.0, 0.0, 0.0]))
    method(torch.tensor([1e-39, 2e-39, 2.0]))  # two tiny losses: the softmax of their (huge) logit gap
    assert torch.isfinite(method.last_weights).all()
    torch.testing.assert_close(method.last_weights.sum(), torch.tensor(1.0))
    assert method.last_weights[0] > method.last_weights[1] >= 0
