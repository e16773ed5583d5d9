"""A map-style dataset over some image indices of a :class:`DenseFolder`, optionally augmented."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from taskbalance.data.dense_folder import DenseFolder
from taskbalance.data.dense_sample import DenseSample
from taskbalance.data.transforms import DenseAugmentation, augmentation_generator


def _target(sample: DenseSample, modality: str) -> Tensor:
    target = {"label": sample.label, "depth": sample.depth, "normal": sample.normals}[modality]
    if target is None:
        raise ValueError(f"modality {modality!r} was not loaded")
    return target


class DenseDataset(Dataset[tuple[Tensor, dict[str, Tensor]]]):
    """Items ``(image [3, H, W] float32, {task name: target})`` for the given image indices of one folder.

    Targets by modality: ``label`` → int64 ``[H, W]`` (−1 = ignore), ``depth`` → float32 ``[1, H, W]``, ``normal``
    → float32 ``[3, H, W]``. With an ``augmentation`` every item is augmented afresh each time it is read, drawing
    from ``generator`` if given, else from :func:`~taskbalance.data.transforms.augmentation_generator` (a per-worker
    generator inside DataLoader workers, torch's global RNG in the main process).

    Args:
        folder: the opened split folder.
        indices: which of its image indices this dataset holds, in item order.
        task_modalities: task name → modality (``label``, ``depth`` or ``normal``) whose map is its target.
        augmentation: training augmentation, or None.
        generator: fixed generator for the augmentation (tests, single-process use); None for the default above.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> root = Path(tempfile.mkdtemp())
        >>> for modality, array in {"image": np.zeros((2, 3, 3)), "label": np.zeros((2, 3))}.items():
        ...     (root / modality).mkdir()
        ...     np.save(root / modality / "0.npy", array.astype(np.float32))
        >>> data = DenseDataset(DenseFolder(root, ["label"]), [0], {"segmentation": "label"})
        >>> image, targets = data[0]
        >>> image.shape, targets["segmentation"].dtype
        (torch.Size([3, 2, 3]), torch.int64)
    """

    def __init__(
        self,
        folder: DenseFolder,
        indices: Sequence[int],
        task_modalities: Mapping[str, str],
        augmentation: DenseAugmentation | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        unknown = sorted(set(indices).difference(folder.indices))
        if unknown:
            raise ValueError(f"{folder.root}: image index(es) {unknown[:5]} do not exist")
        self.folder = folder
        self.indices = list(indices)
        self.task_modalities = dict(task_modalities)
        self.augmentation = augmentation
        self.generator = generator
        self._modalities = tuple(dict.fromkeys(self.task_modalities.values()))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Tensor, dict[str, Tensor]]:
        if not -len(self.indices) <= position < len(self.indices):
            raise IndexError(f"item {position} out of range for a dataset of {len(self.indices)} items")
        sample = self.folder.load(self.indices[position], self._modalities)
        if self.augmentation is not None:
            generator = self.generator if self.generator is not None else augmentation_generator()
            sample = self.augmentation(sample, generator)
        return sample.image, {task: _target(sample, modality) for task, modality in self.task_modalities.items()}

    def __repr__(self) -> str:
        return (
            f"DenseDataset({str(self.folder.root)!r}, items={len(self)}, tasks={list(self.task_modalities)}, "
            f"augmentation={self.augmentation!r})"
        )
