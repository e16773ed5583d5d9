"""Bad input: shapes, non-finite and non-positive losses raise ValueErrors that name the task and value."""

import math
import re

import pytest
import torch

from taskbalance.weighting import UWO, UWSO, WEIGHTINGS, LossWeighting, Scalarization, create

ALL = WEIGHTINGS.names()
INVERTING = [name for name in ALL if WEIGHTINGS.get(name).requires_positive_losses]
NAMES = ["seg", "depth", "normal"]


def build(name: str, **options: object) -> LossWeighting:
    return create(name, num_tasks=3, task_names=NAMES, **options)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(3, 1), (1, 3), (2,), (4,), ()])
def test_wrong_shape_quotes_the_shape(name: str, shape: tuple[int, ...]) -> None:
    method = build(name)
    prefix = rf"{type(method).__name__}: losses must be a 1-D tensor of 3 task losses"
    expected = rf"{prefix}, got shape {re.escape(str(shape))}"
    with pytest.raises(ValueError, match=expected):
        method(torch.ones(shape))


@pytest.mark.parametrize("name", ALL)
def test_a_list_is_a_type_error_that_suggests_stack(name: str) -> None:
    with pytest.raises(TypeError, match=r"torch.stack\(losses\).*got list"):
        build(name)([torch.tensor(1.0)] * 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_names_task_and_value(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=rf"the loss of task 1 \('depth'\) is {bad}; every loss must be finite"):
        build(name)(torch.tensor([1.0, bad, 2.0]))


@pytest.mark.parametrize("name", INVERTING)
@pytest.mark.parametrize("bad", [0.0, -0.5])
def test_non_positive_loss_raises_for_methods_that_invert_it(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=rf"the loss of task 2 \('normal'\) is {bad}; .* must be > 0"):
        build(name)(torch.tensor([1.0, 2.0, bad]))


def test_message_without_task_names_uses_the_index() -> None:
    with pytest.raises(ValueError, match=r"UWO: the loss of task 0 is 0.0;"):
        UWO(2)(torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("name", sorted(set(ALL) - set(INVERTING)))
def test_zero_loss_is_fine_for_methods_that_do_not_invert_it(name: str) -> None:
    total = build(name)(torch.tensor([0.0, 1.0, 2.0]))
    assert torch.isfinite(total)


def test_validate_false_skips_the_check_and_adds_no_epsilon() -> None:
    # No silent epsilon: a zero loss gives an infinite weight, never a finite 1e8.
    method = UWO(2, validate=False)
    method(torch.tensor([0.0, 1.0]))
    assert method.last_weights[0].item() == math.inf
    method = UWSO(2, validate=False)
    total = method(torch.tensor([math.nan, 1.0]))
    assert math.isnan(total.item())


def test_wrong_number_of_task_names() -> None:
    with pytest.raises(ValueError, match=r"got 2 task_names \['a', 'b'\] for num_tasks=3"):
        UWSO(3, task_names=["a", "b"])


@pytest.mark.parametrize("num_tasks", [0, -1, 2.0, True])
def test_num_tasks_must_be_a_positive_int(num_tasks: object) -> None:
    with pytest.raises(ValueError, match="num_tasks must be a positive int"):
        UWO(num_tasks)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.5, 0.5], r"got 2 weights"),
        ([0.5, -0.1, 0.6], r"weight of task 1 \('depth'\) is -0.1"),
        ([0.5, math.nan, 0.6], r"weight of task 1 \('depth'\) is nan"),
        ([0.5, 0.5, math.inf], r"weight of task 2 \('normal'\) is inf"),
        ([0.0, 0.0, 0.0], r"all 0"),
    ],
)
def test_scalarization_weights_are_validated(weights: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scalarization(3, weights=weights, task_names=NAMES)


def test_unknown_registry_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown loss weighting 'uw-so'.*uwso"):
        create("uw-so", num_tasks=3)
