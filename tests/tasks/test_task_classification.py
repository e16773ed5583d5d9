"""Classification and binary attributes: cross-entropy losses and accuracy, checked by hand."""

import math

import pytest
import torch

from taskbalance.tasks import BinaryAttribute, Classification


def test_classification_accuracy_and_loss_by_hand() -> None:
    task = Classification("digit", num_classes=3)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    meter = task.meter()
    meter.update(logits, torch.tensor([0, 1, 1]))  # correct, wrong, correct
    assert meter.compute() == {"accuracy": pytest.approx(2 / 3)}
    # logits (0, 0, 0) with any label → log 3; logits (log 2, 0, 0) with label 0 → −log(2/4) = log 2.
    loss = task.loss(torch.tensor([[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0]]), torch.tensor([2, 0]))
    assert float(loss) == pytest.approx((math.log(3) + math.log(2)) / 2)


def test_classification_accumulates_counts_over_batches() -> None:
    meter = Classification("digit", num_classes=2).meter()
    meter.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))  # 1 of 1
    meter.update(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), torch.tensor([1, 1, 0]))  # 1 of 3
    assert meter.compute()["accuracy"] == pytest.approx(2 / 4)  # per-batch mean would be 2/3


def test_classification_bad_input() -> None:
    task = Classification("digit", num_classes=3)
    with pytest.raises(ValueError) as error:
        task.loss(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    assert "'digit'" in str(error.value) and "(4, 2)" in str(error.value) and "(4,)" in str(error.value)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        task.meter().update(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class labels"):
        task.loss(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"label 3 is outside \[0, 3\)"):
        task.meter().update(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="no sample"):
        task.meter().compute()
    with pytest.raises(ValueError, match="num_classes"):
        Classification("digit", num_classes=True)


def test_classification_directions_and_head() -> None:
    task = Classification("digit", num_classes=10)
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [("accuracy", True)]
    assert (task.head.out_channels, task.head.dense) == (10, False)


def test_binary_attribute_accuracy_uses_logit_above_zero() -> None:
    meter = BinaryAttribute("smiling").meter()
    # Decisions: 1, 0, 1, 0, 0 (a logit of exactly 0 is "no") against labels 1, 0, 0, 0, 1.
    meter.update(torch.tensor([3.0, -1.0, 0.5, -2.0, 0.0]), torch.tensor([1, 0, 0, 0, 1]))
    assert meter.compute() == {"accuracy": pytest.approx(3 / 5)}


def test_binary_attribute_loss_by_hand_for_both_shapes_and_label_dtypes() -> None:
    task = BinaryAttribute("smiling")
    # logit 0 → log 2 for either label; logit log 3 with label 1 → −log(3/4).
    logits = torch.tensor([0.0, math.log(3.0)])
    expected = (math.log(2) - math.log(0.75)) / 2
    assert float(task.loss(logits, torch.tensor([0, 1]))) == pytest.approx(expected)
    assert float(task.loss(logits[:, None], torch.tensor([0.0, 1.0]))) == pytest.approx(expected)
    assert float(task.loss(logits[:, None], torch.tensor([[0.0], [1.0]]))) == pytest.approx(expected)


def test_binary_attribute_bad_input() -> None:
    task = BinaryAttribute("smiling")
    with pytest.raises(ValueError) as error:
        task.loss(torch.zeros(4, 2), torch.zeros(4))
    assert "'smiling'" in str(error.value) and "(4, 2)" in str(error.value) and "(4,)" in str(error.value)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        task.meter().update(torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"'smiling'.*0/1 labels, got -1"):
        task.meter().update(torch.zeros(2), torch.tensor([1, -1]))


def test_binary_attribute_directions_and_head() -> None:
    task = BinaryAttribute("smiling")
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [("accuracy", True)]
    assert (task.head.out_channels, task.head.dense) == (1, False)


def test_binary_attribute_f1_from_the_split_counts() -> None:
    task = BinaryAttribute("smiling", metrics=("f1", "accuracy"))
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [("f1", True), ("accuracy", True)]
    assert repr(task) == "BinaryAttribute(name='smiling', metrics=('f1', 'accuracy'))"
    meter = task.meter()
    # Two batches: decisions 1, 0, 1 | 0, 1 against labels 1, 0, 0 | 1, 1 → TP 2, FP 1, FN 1, TN 1.
    meter.update(torch.tensor([3.0, -1.0, 0.5]), torch.tensor([1, 0, 0]))
    meter.update(torch.tensor([[-2.0], [4.0]]), torch.tensor([[1.0], [1.0]]))
    assert meter.compute() == {"f1": pytest.approx(4 / 6), "accuracy": pytest.approx(3 / 5)}
    # The split's F1 is not the mean of the batches' F1s (2/3 and 2/3 here would hide it; these differ).
    first, second = task.meter(), task.meter()
    first.update(torch.tensor([3.0, 0.5]), torch.tensor([1, 0]))  # TP 1, FP 1: F1 2/3
    second.update(torch.tensor([-1.0, 2.0, 2.0]), torch.tensor([1, 1, 1]))  # TP 2, FN 1: F1 4/5
    both = task.meter()
    both.update(torch.tensor([3.0, 0.5, -1.0, 2.0, 2.0]), torch.tensor([1, 0, 1, 1, 1]))
    assert both.compute()["f1"] == pytest.approx(6 / 8) != (first.compute()["f1"] + second.compute()["f1"]) / 2


def test_binary_attribute_f1_without_positives_is_zero() -> None:
    meter = BinaryAttribute("bald", metrics=("f1",)).meter()
    meter.update(torch.tensor([-1.0, -3.0]), torch.tensor([0, 0]))
    assert meter.compute() == {"f1": 0.0}


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [(("recall",), r"unknown metric\(s\) 'recall' in \['recall'\]"), (("f1", "f1"), "a metric named twice"),
     ((), "metrics must be a non-empty list"), ((1,), "metrics must be a non-empty list"),
     ("f1", r'metrics must be a list of metric names, e\.g\. \["f1"\], got the string \'f1\'')],
)
def test_binary_attribute_refuses_bad_metric_names(metrics: tuple[object, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=rf"task 'smiling': {problem}"):
        BinaryAttribute("smiling", metrics=metrics)  # type: ignore[arg-type]
