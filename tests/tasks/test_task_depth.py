"""Depth: L1 over valid pixels and pixel-weighted errors over a split, checked by hand."""

import pytest
import torch

from taskbalance.tasks import Depth

# 2×3 map; target 0 marks invalid pixels. Valid (prediction, target): (1, 2) (3, 3) (5, 10) (6, 4)
# |p − t| = 1, 0, 5, 2 → abs_err = 8/4 = 2; |p − t|/t = 1/2, 0, 1/2, 1/2 → rel_err = 1.5/4 = 0.375.
PREDICTION = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]])
TARGET = torch.tensor([[[[2.0, 0.0, 3.0], [0.0, 10.0, 4.0]]]])


def test_loss_and_metrics_by_hand_with_invalid_pixels() -> None:
    task = Depth("depth")
    assert float(task.loss(PREDICTION, TARGET)) == pytest.approx(2.0)
    meter = task.meter()
    meter.update(PREDICTION, TARGET)
    assert meter.compute() == pytest.approx({"abs_err": 2.0, "rel_err": 0.375})


def test_a_target_without_channel_axis_is_accepted() -> None:
    task = Depth("depth")
    assert float(task.loss(PREDICTION, TARGET[:, 0])) == pytest.approx(2.0)
    meter = task.meter()
    meter.update(PREDICTION, TARGET[:, 0])
    assert meter.compute()["abs_err"] == pytest.approx(2.0)


def test_invalid_pixels_get_no_gradient_and_cannot_poison_the_loss() -> None:
    prediction = PREDICTION.clone()
    prediction[0, 0, 0, 1] = float("inf")  # on an invalid pixel
    prediction.requires_grad_(True)
    loss = Depth("depth").loss(prediction, TARGET)
    assert loss.detach().item() == pytest.approx(2.0)
    loss.backward()
    assert prediction.grad is not None
    # d/dp of (1/4) Σ |p − t|: sign(p − t)/4 on valid pixels, 0 on invalid ones (and 0 where p = t).
    expected = torch.tensor([[[[-0.25, 0.0, 0.0], [0.0, -0.25, 0.25]]]])
    assert torch.equal(prediction.grad, expected)


def test_errors_are_pixel_weighted_over_the_split() -> None:
    meter = Depth("depth").meter()
    meter.update(torch.tensor([[[[5.0, 7.0]]]]), torch.tensor([[[[1.0, 0.0]]]]))  # one valid pixel, error 4
    meter.update(torch.full((1, 1, 1, 3), 2.0), torch.full((1, 1, 1, 3), 2.0))  # three valid pixels, error 0
    # (4 + 0 + 0 + 0) / 4 = 1; a mean of per-batch means would give (4 + 0)/2 = 2.
    assert meter.compute() == pytest.approx({"abs_err": 1.0, "rel_err": 1.0})


def test_two_batches_accumulate_to_the_same_result_as_one() -> None:
    generator = torch.Generator().manual_seed(0)
    prediction = torch.rand(5, 1, 6, 7, generator=generator) * 10
    target = torch.rand(5, 1, 6, 7, generator=generator) * 10
    target[torch.rand(target.shape, generator=generator) < 0.3] = 0
    task = Depth("depth", inverse=True)
    whole, parts = task.meter(), task.meter()
    whole.update(prediction, target)
    parts.update(prediction[:2], target[:2])
    parts.update(prediction[2:], target[2:])
    valid = target != 0
    error = (prediction.double() - target.double()).abs()[valid]
    expected = {"abs_err": float(error.mean()), "rel_err": float((error / target[valid].double()).mean())}
    assert whole.compute() == pytest.approx(expected, rel=1e-12)
    assert parts.compute() == pytest.approx(expected, rel=1e-12)


def test_batch_without_valid_pixel_has_zero_loss_and_an_empty_meter_refuses_to_compute() -> None:
    task = Depth("depth")
    assert float(task.loss(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))) == 0.0
    meter = task.meter()
    meter.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"'depth'.*no valid pixel"):
        meter.compute()


def test_metrics_directions_head_and_repr() -> None:
    task = Depth("disparity", inverse=True)
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [("abs_err", False), ("rel_err", False)]
    assert task.head.out_channels == 1 and task.head.dense
    assert repr(task) == "Depth(name='disparity', inverse=True, averaging='split')"


def test_shape_mismatch_names_task_and_both_shapes() -> None:
    task = Depth("depth")
    for prediction, target in [
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5)),
        (torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4)),
        (torch.zeros(2, 1, 4, 4), torch.zeros(3, 4, 4)),
    ]:
        for call in (task.loss, task.meter().update):
            with pytest.raises(ValueError) as error:
                call(prediction, target)
            message = str(error.value)
            assert "'depth'" in message and str(tuple(prediction.shape)) in message
            assert str(tuple(target.shape)) in message


def test_batch_averaging_is_the_unweighted_mean_of_each_batchs_pixel_means() -> None:
    # Batch A: 4 valid pixels with error 1 (target 2); batch B: 1 valid pixel with error 3 (target 4) and 1 invalid.
    batches = [(torch.ones(1, 1, 1, 4), torch.full((1, 1, 1, 4), 2.0)),
               (torch.tensor([[[[1.0, 5.0]]]]), torch.tensor([[[[4.0, 0.0]]]]))]
    split, batch = Depth("depth").meter(), Depth("depth", averaging="batch").meter()
    for prediction, target in batches:
        split.update(prediction, target)
        batch.update(prediction, target)
    assert split.compute() == pytest.approx({"abs_err": 7 / 5, "rel_err": (4 * 0.5 + 0.75) / 5})
    assert batch.compute() == pytest.approx({"abs_err": (1 + 3) / 2, "rel_err": (0.5 + 0.75) / 2})


def test_batch_averaging_leaves_out_a_batch_without_valid_pixels_and_refuses_an_empty_split() -> None:
    meter = Depth("depth", averaging="batch").meter()
    meter.update(torch.ones(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))  # nothing valid
    with pytest.raises(ValueError, match="task 'depth': no batch with a valid pixel"):
        meter.compute()
    meter.update(torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 2.0))
    assert meter.compute() == {"abs_err": 1.0, "rel_err": 0.5}


def test_unknown_averaging_is_refused_by_task_name() -> None:
    with pytest.raises(ValueError, match=r"task 'depth': averaging must be one of 'split', 'batch', got 'pixel'"):
        Depth("depth", averaging="pixel")
