"""Properties every task kind shares: registry, meter keys, accumulation, no_grad, loss on the graph."""

from collections.abc import Callable

import pytest
import torch

from taskbalance.tasks import (
    TASKS,
    BinaryAttribute,
    Classification,
    Depth,
    Regression,
    SemanticSegmentation,
    SurfaceNormals,
    Task,
    create,
)

Batch = tuple[torch.Tensor, torch.Tensor]


def _segmentation(g: torch.Generator) -> Batch:
    return torch.randn(6, 4, 3, 5, generator=g), torch.randint(-1, 4, (6, 3, 5), generator=g)


def _depth(g: torch.Generator) -> Batch:
    target = torch.rand(6, 1, 3, 5, generator=g) * 5
    target[:, :, 0] = 0
    return torch.rand(6, 1, 3, 5, generator=g) * 5, target


def _normals(g: torch.Generator) -> Batch:
    target = torch.nn.functional.normalize(torch.randn(6, 3, 3, 5, generator=g), dim=1)
    target[:, :, 1, 1] = 0
    return torch.randn(6, 3, 3, 5, generator=g), target


def _binary(g: torch.Generator) -> Batch:
    return torch.randn(6, 1, generator=g), torch.randint(0, 2, (6,), generator=g).float()


def _classification(g: torch.Generator) -> Batch:
    return torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)


def _regression(g: torch.Generator) -> Batch:
    return torch.randn(6, 2, 3, 5, generator=g), torch.randn(6, 2, 3, 5, generator=g)


CASES: list[tuple[Task, Callable[[torch.Generator], Batch]]] = [
    (SemanticSegmentation("seg", num_classes=4), _segmentation),
    (Depth("depth"), _depth),
    (SurfaceNormals("normal"), _normals),
    (BinaryAttribute("smiling"), _binary),
    (Classification("digit", num_classes=5), _classification),
    (Regression("map", out_channels=2, dense=True, size=(3, 5), loss="mse"), _regression),
]
IDS = [type(task).__name__ for task, _ in CASES]


@pytest.mark.parametrize(("task", "make_batch"), CASES, ids=IDS)
def test_meter_keys_are_the_metric_names_and_batching_does_not_change_the_result(
    task: Task, make_batch: Callable[[torch.Generator], Batch]
) -> None:
    prediction, target = make_batch(torch.Generator().manual_seed(0))
    whole, parts = task.meter(), task.meter()
    with torch.no_grad():
        whole.update(prediction, target)
        for chunk in (slice(0, 1), slice(1, 4), slice(4, 6)):
            parts.update(prediction[chunk], target[chunk])
    result = whole.compute()
    assert list(result) == [spec.name for spec in task.metrics]
    assert all(isinstance(value, float) for value in result.values())
    assert parts.compute() == pytest.approx(result, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("task", "make_batch"), CASES, ids=IDS)
def test_loss_is_a_finite_scalar_on_the_graph_and_meters_accept_tensors_that_require_grad(
    task: Task, make_batch: Callable[[torch.Generator], Batch]
) -> None:
    prediction, target = make_batch(torch.Generator().manual_seed(1))
    prediction.requires_grad_(True)
    loss = task.loss(prediction, target)
    assert loss.dim() == 0 and bool(torch.isfinite(loss)) and loss.detach().item() > 0
    loss.backward()
    assert prediction.grad is not None and bool(torch.isfinite(prediction.grad).all())
    assert bool(prediction.grad.abs().sum() > 0)
    meter = task.meter()
    meter.update(prediction, target)  # outside no_grad: the meter must not keep the graph or fail
    assert set(meter.compute()) == {spec.name for spec in task.metrics}


def test_registry_holds_every_kind_under_its_lower_case_class_name() -> None:
    assert TASKS.names() == sorted(
        ["semanticsegmentation", "depth", "surfacenormals", "binaryattribute", "classification", "regression"]
    )
    assert TASKS.get("SurfaceNormals") is SurfaceNormals


def test_create_builds_a_task_from_its_kind_in_any_spelling() -> None:
    segmentation = create("semantic_segmentation", "seg", num_classes=13)
    assert isinstance(segmentation, SemanticSegmentation) and segmentation.num_classes == 13
    assert segmentation.name == "seg" and segmentation.ignore_index == -1
    depth = create("Depth", "depth", inverse=True)
    assert isinstance(depth, Depth) and depth.inverse
    assert isinstance(create("BinaryAttribute", "smiling"), BinaryAttribute)


def test_create_reports_unknown_kinds_and_options() -> None:
    with pytest.raises(KeyError, match="unknown task kind 'keypoints'"):
        create("keypoints", "k")
    with pytest.raises(ValueError, match=r"'depth'.*\['classes'\]"):
        create("depth", "d", classes=3)


def test_a_task_needs_a_name() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        Depth("")


@pytest.mark.parametrize(
    ("task", "good", "bad", "message"),
    [
        (BinaryAttribute("smiling"), torch.tensor([0, 1, 1]), torch.tensor([-1, 1, 1]),
         r"task 'smiling': target must hold 0/1 labels, got -1"),
        (Classification("digit", 3), torch.tensor([0, 2]), torch.tensor([1, 3]),
         r"task 'digit': target label 3 is outside \[0, 3\)"),
        (SemanticSegmentation("seg", 3), torch.tensor([[[0, 2], [-1, 1]]]), torch.tensor([[[0, 3], [-1, 1]]]),
         r"task 'seg': target label 3 is outside \[0, 3\) and is not the ignore label -1"),
    ],
)
def test_check_targets_names_the_task_and_the_bad_label(task: Task, good: torch.Tensor, bad: torch.Tensor,
                                                         message: str) -> None:
    task.check_targets(good)
    with pytest.raises(ValueError, match=message):
        task.check_targets(bad)
