"""Semantic segmentation: loss and metrics against values worked out by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from taskbalance.tasks import SemanticSegmentation


def logits_for(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits [B, C, H, W] whose arg-max is ``labels`` [B, H, W]."""
    return F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float() * 5.0


# A 2×3 image: target row-major [[0, 0, 1], [2, −1, 1]], predicted [[0, 1, 1], [2, 0, 0]].
# (target, predicted) pairs of the 5 labelled pixels: (0,0) (0,1) (1,1) (2,2) (1,0) → confusion (rows = target)
# [[1, 1, 0], [1, 1, 0], [0, 0, 1]]; IoU = 1/3, 1/3, 1 → mIoU 5/9; pixel accuracy 3/5.
TARGET = torch.tensor([[[0, 0, 1], [2, -1, 1]]])
PREDICTED = torch.tensor([[[0, 1, 1], [2, 0, 0]]])


def test_confusion_matrix_miou_and_pixel_accuracy_by_hand() -> None:
    meter = SemanticSegmentation("seg", num_classes=3).meter()
    meter.update(logits_for(PREDICTED, 3), TARGET)
    assert meter.confusion_matrix.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    result = meter.compute()
    assert result["miou"] == pytest.approx(5 / 9)
    assert result["pixel_acc"] == pytest.approx(3 / 5)


def test_a_class_absent_from_targets_and_predictions_is_left_out_of_the_mean() -> None:
    meter = SemanticSegmentation("seg", num_classes=5).meter()  # classes 3 and 4 never occur
    meter.update(logits_for(PREDICTED, 5), TARGET)
    assert meter.compute()["miou"] == pytest.approx(5 / 9)


def test_a_class_only_predicted_counts_with_iou_zero() -> None:
    meter = SemanticSegmentation("seg", num_classes=2).meter()
    meter.update(logits_for(torch.tensor([[[0, 1]]]), 2), torch.tensor([[[0, 0]]]))
    # IoU_0 = 1 / (2 + 1 − 1) = 1/2, IoU_1 = 0 / 1 → mIoU 1/4
    assert meter.compute() == pytest.approx({"miou": 0.25, "pixel_acc": 0.5})


def test_miou_comes_from_one_confusion_matrix_not_from_per_batch_means() -> None:
    meter = SemanticSegmentation("seg", num_classes=2).meter()
    meter.update(logits_for(torch.tensor([[[0, 0]]]), 2), torch.tensor([[[0, 0]]]))  # alone: mIoU 1
    meter.update(logits_for(torch.tensor([[[0, 1]]]), 2), torch.tensor([[[1, 1]]]))  # alone: mIoU (0 + 1/2)/2
    # Together: confusion [[2, 0], [1, 1]]; IoU_0 = 2/3, IoU_1 = 1/2 → 7/12 (the mean of per-batch values is 5/8).
    assert meter.compute()["miou"] == pytest.approx(7 / 12)


def test_two_batches_accumulate_to_the_same_result_as_one() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 4, 5, 6, generator=generator)
    target = torch.randint(-1, 4, (4, 5, 6), generator=generator)
    task = SemanticSegmentation("seg", num_classes=4)
    whole, parts = task.meter(), task.meter()
    whole.update(logits, target)
    parts.update(logits[:1], target[:1])
    parts.update(logits[1:], target[1:])
    assert torch.equal(whole.confusion_matrix, parts.confusion_matrix)
    assert whole.compute() == parts.compute()
    # The confusion matrix agrees with a plain loop over pixels.
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(target.flatten().tolist(), logits.argmax(1).flatten().tolist(), strict=True):
        if t != -1:
            expected[t, p] += 1
    assert torch.equal(whole.confusion_matrix, expected)


def test_loss_is_cross_entropy_over_labelled_pixels_only() -> None:
    task = SemanticSegmentation("seg", num_classes=2)
    # Pixel 1: logits (0, 0), label 0 → log 2. Pixel 2: logits (log 3, 0), label 1 → −log(1/4) = log 4.
    # Pixel 3: ignored, whatever its logits.
    logits = torch.tensor([[[[0.0, math.log(3.0), 100.0]], [[0.0, 0.0, -100.0]]]])
    target = torch.tensor([[[0, 1, -1]]])
    assert float(task.loss(logits, target)) == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_loss_matches_torch_cross_entropy_and_all_ignored_batch_gives_zero_not_nan() -> None:
    torch.manual_seed(1)
    task = SemanticSegmentation("seg", num_classes=3)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(-1, 3, (2, 4, 4))
    assert torch.allclose(task.loss(logits, target), F.cross_entropy(logits, target, ignore_index=-1))
    empty = task.loss(logits, torch.full((2, 4, 4), -1))
    assert empty.detach().item() == 0.0
    empty.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def test_a_custom_ignore_index_is_honoured() -> None:
    task = SemanticSegmentation("seg", num_classes=2, ignore_index=255)
    meter = task.meter()
    meter.update(logits_for(torch.tensor([[[0, 1]]]), 2), torch.tensor([[[0, 255]]]))
    assert meter.compute() == {"miou": 1.0, "pixel_acc": 1.0}


def test_metrics_directions_and_head() -> None:
    task = SemanticSegmentation("seg", num_classes=7)
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [("miou", True), ("pixel_acc", True)]
    assert task.head.out_channels == 7 and task.head.dense and task.head.size is None


@pytest.mark.parametrize(
    ("logits_shape", "target_shape"),
    [((2, 3, 4, 5), (2, 4, 6)), ((2, 3, 4, 5), (1, 4, 5)), ((2, 2, 4, 5), (2, 4, 5)), ((2, 3, 4, 5), (2, 1, 4, 5))],
)
def test_shape_mismatch_names_task_and_both_shapes(logits_shape: tuple, target_shape: tuple) -> None:
    task = SemanticSegmentation("seg", num_classes=3)
    logits, target = torch.zeros(logits_shape), torch.zeros(target_shape, dtype=torch.long)
    for call in (task.loss, task.meter().update):
        with pytest.raises(ValueError) as error:
            call(logits, target)
        assert "'seg'" in str(error.value)
        assert str(logits_shape) in str(error.value) and str(target_shape) in str(error.value)


def test_bad_input_is_refused_with_a_clear_error() -> None:
    task = SemanticSegmentation("seg", num_classes=3)
    with pytest.raises(ValueError, match=r"'seg'.*integer class labels.*float32"):
        task.loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"'seg'.*label 3 is outside \[0, 3\)"):
        task.meter().update(torch.zeros(1, 3, 1, 2), torch.tensor([[[0, 3]]]))
    with pytest.raises(ValueError, match="no labelled"):
        task.meter().compute()
    with pytest.raises(ValueError, match="ignore_index"):
        SemanticSegmentation("seg", num_classes=3, ignore_index=0)
    with pytest.raises(ValueError, match="num_classes"):
        SemanticSegmentation("seg", num_classes=1)
