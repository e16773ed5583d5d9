"""What a dataset provides to the training loop: three splits and its tasks.

Each split is a map-style ``torch.utils.data.Dataset`` whose items are ``(input, targets)`` with ``targets`` a
dict task name → target tensor, so the default collate function batches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor
from torch.utils.data import Dataset

from taskbalance.tasks.base import Task


@runtime_checkable
class TensorSplit(Protocol):
    """A split that holds all its samples as tensors (e.g. the embedded MultiFashion): item ``i`` is
    ``(inputs[i], {task: targets[task][i]})``, so a training loop may keep it on the device and batch by indexing."""

    def tensors(self) -> tuple[Tensor, dict[str, Tensor]]:
        """``(inputs, targets)``: every sample's input stacked, and per task every sample's target stacked."""
        ...


@dataclass
class MultiTaskData:
    """Train/validation/test splits of one multi-task problem and its task definitions.

    Attributes:
        name: registry name of the dataset.
        train, val, test: the three splits (``val`` is carved from train where the source has no validation split).
        tasks: task name → task, in the problem's canonical order.
        input_shape: shape ``(C, H, W)`` of one input.
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    tasks: dict[str, Task]
    input_shape: tuple[int, ...]

    def select(self, task_names: list[str]) -> MultiTaskData:
        """The same data restricted to a subset of tasks (targets of other tasks are still yielded, unused)."""
        unknown = [t for t in task_names if t not in self.tasks]
        if unknown:
            raise KeyError(f"dataset {self.name!r} has no task(s) {unknown}; tasks: {list(self.tasks)}")
        return MultiTaskData(
            self.name, self.train, self.val, self.test, {t: self.tasks[t] for t in task_names}, self.input_shape
        )
