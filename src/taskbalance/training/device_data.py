"""Splits kept on the device: batches by indexing there instead of collating on the host (``data_on_device``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from taskbalance.data.base import MultiTaskData, TensorSplit
from taskbalance.training.config import ConfigError

Batch = tuple[Tensor, dict[str, Tensor]]


class DeviceSplit:
    """A split's inputs and targets as tensors on one device.

    Indexing with a batch of sample indices gives the same tensors a DataLoader would collate from the same samples,
    so a run keeps its result; only the host work per batch goes away.

    Example:
        >>> split = DeviceSplit(torch.arange(6.0).view(6, 1), {"y": torch.arange(6)})
        >>> [y["y"].tolist() for _, y in split.batches([[4, 0], [2]])]
        [[4, 0], [2]]
        >>> [x.shape[0] for x, _ in split.in_order(4)]
        [4, 2]
    """

    def __init__(self, inputs: Tensor, targets: dict[str, Tensor]) -> None:
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def batches(self, indices: Sequence[Sequence[int]]) -> Iterator[Batch]:
        for batch in indices:
            index = torch.as_tensor(batch, device=self.inputs.device)
            yield self.inputs[index], {name: target[index] for name, target in self.targets.items()}

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.inputs[start:stop], {name: target[start:stop] for name, target in self.targets.items()}

    @classmethod
    def all_of(cls, data: MultiTaskData, device: torch.device) -> dict[str, DeviceSplit]:
        """The train, val and test splits of ``data`` moved to ``device`` once.

        Raises:
            ConfigError: a split does not hold its samples as tensors (an on-disk dataset); names ``data_on_device``.
        """
        resident = {}
        for split in ("train", "val", "test"):
            dataset = getattr(data, split)
            if not isinstance(dataset, TensorSplit):
                raise ConfigError(
                    f"data_on_device: the {split} split of dataset {data.name!r} ({type(dataset).__name__}) is not "
                    "held in memory as tensors; use loader_workers for on-disk datasets instead"
                )
            inputs, targets = dataset.tensors()
            resident[split] = cls(inputs.to(device), {name: t.to(device) for name, t in targets.items()})
        return resident
