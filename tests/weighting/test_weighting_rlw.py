"""RLW (Lin et al. 2022): softmax of a fresh normal draw, from a seedable generator."""

import math

import pytest
import torch

from taskbalance.weighting import RLW


def draws(method: RLW, count: int) -> torch.Tensor:
    losses = torch.ones(method.num_tasks)
    rows = []
    for _ in range(count):
        method(losses)
        rows.append(method.last_weights)
    return torch.stack(rows)


def test_weights_are_positive_and_sum_to_one() -> None:
    weights = draws(RLW(4, seed=0), 200)
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(200))
    # Fresh weights every step.
    assert not torch.equal(weights[0], weights[1])


def test_weights_are_softmax_of_the_generators_normal_draw() -> None:
    method = RLW(3, seed=7)
    method(torch.ones(3))
    z = torch.randn(3, generator=torch.Generator().manual_seed(7)).tolist()
    exps = [math.exp(v) for v in z]
    assert method.last_weights.tolist() == pytest.approx([e / sum(exps) for e in exps], rel=1e-6)


def test_mean_weight_is_one_over_k() -> None:
    # softmax of i.i.d. draws is exchangeable, so each task's expected weight is 1/K.
    mean = draws(RLW(3, seed=3), 4000).mean(dim=0)
    torch.testing.assert_close(mean, torch.full((3,), 1 / 3), rtol=0.0, atol=0.01)


def test_reproducible_from_seed_generator_or_global_seed() -> None:
    assert torch.equal(draws(RLW(3, seed=5), 5), draws(RLW(3, seed=5), 5))
    assert not torch.equal(draws(RLW(3, seed=5), 5), draws(RLW(3, seed=6), 5))
    assert torch.equal(draws(RLW(3, generator=torch.Generator().manual_seed(5)), 5), draws(RLW(3, seed=5), 5))
    torch.manual_seed(11)
    first = draws(RLW(3), 5)
    torch.manual_seed(11)
    assert torch.equal(draws(RLW(3), 5), first)


def test_total_is_the_weighted_sum() -> None:
    method = RLW(2, seed=1)
    total = method(torch.tensor([2.0, 10.0]))
    w = method.last_weights.tolist()
    assert float(total) == pytest.approx(2.0 * w[0] + 10.0 * w[1])


def test_seed_and_generator_together_are_rejected() -> None:
    with pytest.raises(ValueError, match="either generator or seed"):
        RLW(2, generator=torch.Generator(), seed=1)
