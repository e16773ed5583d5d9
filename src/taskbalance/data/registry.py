"""``DATASETS``: registry name → dataset builder; ``DATASET_TASKS``: registry name → the dataset's task list;
``DATASET_OPTION_CHECKS``: registry name → a check of the builder's option values that reads no file.

Each builder registers itself with ``@DATASETS.register(name)`` and, beside it, a cheap function that returns the
tasks the builder would give for the same options without loading the data, ``@DATASET_TASKS.register(name)``.
The task function declares, as keyword-only parameters, only the builder's options it needs (e.g. ``tasks`` and
``root``); :func:`taskbalance.data.dataset_tasks` passes it those. An option check (optional) declares the same
way the options whose values it checks, and raises a ``ValueError`` naming the option
(:func:`taskbalance.data.check_option_values`: a dry run checks a command made away from the data with it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskbalance.registry import Registry

if TYPE_CHECKING:
    from taskbalance.data.base import MultiTaskData
    from taskbalance.tasks.base import Task

DATASETS: Registry[MultiTaskData] = Registry("dataset")
DATASET_TASKS: Registry[dict[str, Task]] = Registry("dataset task list")
DATASET_OPTION_CHECKS: Registry[None] = Registry("dataset option check")
