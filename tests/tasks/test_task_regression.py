"""Regression (vector and dense): L1/MSE losses and MAE/RMSE, checked by hand."""

import math

import pytest
import torch

from taskbalance.tasks import Regression


def test_vector_regression_l1_and_mse_losses_and_metrics_by_hand() -> None:
    prediction = torch.tensor([[1.0], [4.0], [0.0]])
    target = torch.tensor([2.0, 2.0, 0.0])  # errors −1, 2, 0
    assert float(Regression("age").loss(prediction, target)) == pytest.approx(3 / 3)
    assert float(Regression("age", loss="mse").loss(prediction, target)) == pytest.approx(5 / 3)
    meter = Regression("age").meter()
    meter.update(prediction, target)
    assert meter.compute() == pytest.approx({"mae": 1.0, "rmse": math.sqrt(5 / 3)})


def test_multi_output_regression_averages_over_every_element() -> None:
    task = Regression("pose", out_channels=2)
    prediction, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 5.0]])  # errors 1, −3
    assert float(task.loss(prediction, target)) == pytest.approx(2.0)
    meter = task.meter()
    meter.update(prediction, target)
    assert meter.compute() == pytest.approx({"mae": 2.0, "rmse": math.sqrt(5.0)})


def test_dense_regression_accepts_a_target_without_channel_axis() -> None:
    task = Regression("map", dense=True, size=(1, 2))
    prediction = torch.tensor([[[[0.5, 1.0]]], [[[0.0, 0.0]]]])  # [2, 1, 1, 2]
    target = torch.tensor([[[1.0, 1.0]], [[0.0, 2.0]]])  # [2, 1, 2]; errors 0.5, 0, 0, 2
    assert float(task.loss(prediction, target)) == pytest.approx(2.5 / 4)
    meter = task.meter()
    meter.update(prediction[:1], target[:1])
    meter.update(prediction[1:], target[1:])
    assert meter.compute() == pytest.approx({"mae": 2.5 / 4, "rmse": math.sqrt(4.25 / 4)})
    assert task.head.out_channels == 1 and task.head.dense and task.head.size == (1, 2)


def test_directions_and_head_of_a_vector_task() -> None:
    task = Regression("age", out_channels=3)
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [("mae", False), ("rmse", False)]
    assert (task.head.out_channels, task.head.dense, task.head.size) == (3, False, None)


def test_bad_input_and_options_are_refused_with_clear_errors() -> None:
    with pytest.raises(ValueError) as error:
        Regression("map", dense=True).loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 3, 4))
    assert "'map'" in str(error.value) and "(2, 1, 4, 4)" in str(error.value) and "(2, 1, 3, 4)" in str(error.value)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        Regression("age").meter().update(torch.zeros(2, 2), torch.zeros(2, 2))  # out_channels is 1
    with pytest.raises(ValueError, match="loss must be one of"):
        Regression("age", loss="huber")
    with pytest.raises(ValueError, match="only meaningful for a dense task"):
        Regression("age", size=(2, 2))
    with pytest.raises(ValueError, match="size"):
        Regression("map", dense=True, size=(2, 0))
    with pytest.raises(ValueError, match="out_channels"):
        Regression("age", out_channels=0)
