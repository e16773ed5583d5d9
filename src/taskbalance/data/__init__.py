"""Datasets: each registered by name and built as ``create(name, **options) -> MultiTaskData``.

:func:`dataset_tasks` tells a dataset's tasks for the same options without loading it (the CLI needs only the task
names and kinds to plan a benchmark), and :func:`check_options` names an unknown or missing option.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from taskbalance.data import celeba, cityscapes, multifashion, nyuv2  # noqa: F401  (each module registers itself)
from taskbalance.data.base import MultiTaskData
from taskbalance.data.errors import DatasetFormatError
from taskbalance.data.registry import DATASET_OPTION_CHECKS, DATASET_TASKS, DATASETS
from taskbalance.tasks.base import Task

T = TypeVar("T")


class DatasetOptionError(ValueError):
    """An option of a dataset builder is unknown or missing.

    Attributes:
        dataset: the dataset's registry name.
        option: the unknown or missing option.
    """

    def __init__(self, message: str, dataset: str, option: str) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.option = option


def check_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of dataset ``name``'s builder: ``options`` checked against its signature, defaults filled in.

    Raises:
        KeyError: ``name`` is not a registered dataset (the message lists the known ones).
        DatasetOptionError: an option is unknown, or a required one (e.g. ``root``) is missing.

    Example:
        >>> check_options("multifashion", {"num_train": 64})["num_train"]
        64
        >>> check_options("multifashion", {"size": 64})
        Traceback (most recent call last):
        ...
        taskbalance.data.DatasetOptionError: dataset 'multifashion' has no option 'size'; its options: num_train, \
num_val, num_test, seed, tasks
    """
    parameters = inspect.signature(DATASETS.get(name)).parameters
    known = ", ".join(parameters)
    for option in options:
        if option not in parameters:
            raise DatasetOptionError(f"dataset {name!r} has no option {option!r}; its options: {known}", name, option)
    for option, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and option not in options:
            raise DatasetOptionError(f"dataset {name!r} needs the option {option!r}", name, option)
    return {option: options.get(option, parameter.default) for option, parameter in parameters.items()}


def check_option_values(name: str, options: Mapping[str, Any]) -> None:
    """Check ``options`` of dataset ``name`` without any file: their names against the builder (``root`` may be
    absent) and, where the dataset registers a check (``DATASET_OPTION_CHECKS``), their values.

    Raises:
        KeyError: ``name`` is not a registered dataset.
        DatasetOptionError: an option is unknown.
        ValueError: a value is refused (the message names the option).

    Example:
        >>> check_option_values("nyuv2", {"metric_averaging": "Batch"})
        Traceback (most recent call last):
        ...
        ValueError: dataset 'nyuv2': metric_averaging: averaging must be one of 'split', 'batch', got 'Batch'
    """
    arguments = check_options(name, {"root": "", **options})
    if name in DATASET_OPTION_CHECKS:
        _call_with_declared(DATASET_OPTION_CHECKS.get(name), arguments)


def _call_with_declared(function: Callable[..., T], arguments: Mapping[str, Any]) -> T:
    """``function`` called with those of ``arguments`` it declares (a dataset's task list or option check)."""
    wanted = inspect.signature(function).parameters
    return function(**{option: value for option, value in arguments.items() if option in wanted})


def dataset_tasks(name: str, **options: Any) -> dict[str, Task]:
    """The tasks ``create(name, **options)`` would give, in order, without loading the data.

    The options are checked as in :func:`check_options`; the dataset's task function may check a few more cheaply
    (e.g. that ``root`` is a folder, or CelebA's attribute names in the first two lines of its attribute file). A
    dataset registered without a task function (``DATASET_TASKS``) is built to learn its tasks.

    Example:
        >>> list(dataset_tasks("multifashion", tasks=["left", "depth"]))
        ['left', 'depth']
    """
    arguments = check_options(name, options)
    if name not in DATASET_TASKS:
        return dict(create(name, **options).tasks)
    return _call_with_declared(DATASET_TASKS.get(name), arguments)


def create(name: str, **options: object) -> MultiTaskData:
    """Build a registered dataset by name, e.g. ``create("nyuv2", root="data/nyuv2")``."""
    return DATASETS.create(name, **options)


__all__ = [
    "DATASETS",
    "DATASET_OPTION_CHECKS",
    "DATASET_TASKS",
    "DatasetFormatError",
    "DatasetOptionError",
    "MultiTaskData",
    "check_option_values",
    "check_options",
    "create",
    "dataset_tasks",
]
