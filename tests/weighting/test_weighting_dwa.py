"""DWA (Liu et al. 2019): K·softmax(r/T) of epoch-mean loss ratios, ω = 1 for two epochs."""

import math

import pytest
import torch

from taskbalance.weighting import DWA


def reference(previous: list[float], before: list[float], temperature: float) -> list[float]:
    ratios = [a / b for a, b in zip(previous, before, strict=True)]
    exps = [math.exp(r / temperature) for r in ratios]
    return [len(ratios) * e / sum(exps) for e in exps]


def test_unit_weights_for_two_epochs_then_k_softmax_of_ratios() -> None:
    method = DWA(3)
    losses = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    epoch_means = [[2.0, 1.0, 0.5], [1.0, 0.9, 0.6], [0.5, 0.9, 0.3]]

    for epoch in range(2):  # epochs 1 and 2
        assert float(method(losses)) == pytest.approx(6.0)
        assert method.last_weights.tolist() == [1.0, 1.0, 1.0]
        method.end_epoch(torch.tensor(epoch_means[epoch]))
        if epoch == 0:
            assert method.last_weights.tolist() == [1.0, 1.0, 1.0]

    expected = reference(epoch_means[1], epoch_means[0], 2.0)  # epoch 3: r = L̄(2)/L̄(1)
    total = method(losses)
    assert method.last_weights.tolist() == pytest.approx(expected, rel=1e-6)
    assert float(total) == pytest.approx(sum(w * loss for w, loss in zip(expected, [1.0, 2.0, 3.0], strict=True)))
    assert float(method.last_weights.sum()) == pytest.approx(3.0)

    method.end_epoch(torch.tensor(epoch_means[2]))  # epoch 4: r = L̄(3)/L̄(2)
    method(losses)
    assert method.last_weights.tolist() == pytest.approx(reference(epoch_means[2], epoch_means[1], 2.0), rel=1e-6)


def test_temperature_changes_the_spread() -> None:
    method = DWA(2, temperature=0.5)
    method.end_epoch(torch.tensor([1.0, 1.0]))
    method.end_epoch(torch.tensor([2.0, 1.0]))
    assert method.last_weights.tolist() == pytest.approx(reference([2.0, 1.0], [1.0, 1.0], 0.5), rel=1e-6)


def test_history_round_trips_through_state_dict() -> None:
    method = DWA(2)
    method.end_epoch(torch.tensor([1.0, 4.0]))
    restored = DWA(2)
    restored.load_state_dict(method.state_dict())
    for m in (method, restored):
        m.end_epoch(torch.tensor([0.5, 4.0]))
    assert restored.last_weights.tolist() == method.last_weights.tolist()
    assert restored.last_weights.tolist() == pytest.approx(reference([0.5, 4.0], [1.0, 4.0], 2.0), rel=1e-6)
    assert int(restored.epochs_seen) == 2


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_end_epoch_rejects_non_positive_means_even_without_validation(bad: float) -> None:
    method = DWA(3, task_names=["a", "b", "c"], validate=False)
    with pytest.raises(ValueError, match=rf"epoch-mean loss of task 1 \('b'\) is {bad}"):
        method.end_epoch(torch.tensor([1.0, bad, 1.0]))


def test_end_epoch_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"got shape \(2,\)"):
        DWA(3).end_epoch(torch.tensor([1.0, 2.0]))
