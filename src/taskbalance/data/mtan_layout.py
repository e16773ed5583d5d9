"""Builds a :class:`MultiTaskData` from MTAN's pre-processed layout ``root/{train,val}/…/{i}.npy``.

Splits (documented in :mod:`taskbalance.data.splits`): MTAN's ``val`` folder is the **test** split; a validation
split of a fifth of ``train`` (NYUv2: 159 of 795, Cityscapes: 595 of 2975) is carved from ``train`` by a seeded,
platform-independent hash. Training augmentation (:mod:`taskbalance.data.transforms`) applies to the train split
only, never to validation or test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskbalance.data.base import MultiTaskData
from taskbalance.data.dense_dataset import DenseDataset
from taskbalance.data.dense_folder import DenseFolder
from taskbalance.data.errors import DatasetFormatError
from taskbalance.data.splits import carve_validation, validation_count
from taskbalance.data.transforms import DenseAugmentation
from taskbalance.tasks.base import Task


@dataclass(frozen=True)
class DenseTaskSpec:
    """One task of a dense dataset: the task object and the modality folder that holds its targets."""

    task: Task
    modality: str


def choose_tasks(dataset: str, available: Sequence[str], tasks: Sequence[str] | None) -> list[str]:
    """The requested task names (all ``available`` ones when None), checked: known, distinct, at least one."""
    if tasks is None:
        return list(available)
    if isinstance(tasks, str):
        raise TypeError(f"dataset {dataset!r}: tasks must be a sequence of task names, got the string {tasks!r}")
    chosen = list(tasks)
    unknown = [t for t in chosen if t not in available]
    if unknown:
        raise KeyError(f"dataset {dataset!r} has no task(s) {unknown}; tasks: {list(available)}")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"dataset {dataset!r}: tasks must be a non-empty list of distinct names, got {chosen}")
    return chosen


def mtan_task_list(
    name: str,
    root: str | Path,
    specs: Mapping[str, DenseTaskSpec],
    tasks: Sequence[str] | None,
    folder_names: Mapping[str, str] | None = None,
) -> dict[str, Task]:
    """The chosen tasks of a dataset in MTAN's layout, after checking its folders: ``root/train`` and ``root/val``
    each hold ``image/`` and the modality folder of every chosen task (``folder_names``: modality → folder where
    they differ). No file is read, so a wrong ``root`` or a partial copy fails here, before any run starts."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: missing dataset folder; expected {name} in MTAN's layout with train/, val/")
    for split in ("train", "val"):
        if not (root / split / "image").is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())[:8]
            raise DatasetFormatError(
                f"{root}: no {split}/image/ folder; expected {name} in MTAN's layout (train/ and val/, each with "
                f"image/ and a folder per modality); sub-folders here: {found or 'none'}"
            )
    chosen = choose_tasks(name, list(specs), tasks)
    names = dict(folder_names or {})
    for split in ("train", "val"):
        for task in chosen:
            folder = names.get(specs[task].modality, specs[task].modality)
            if not (root / split / folder).is_dir():
                found = sorted(p.name for p in (root / split).iterdir() if p.is_dir())[:8]
                raise DatasetFormatError(
                    f"{root}: no {split}/{folder}/ folder, which holds the targets of the task {task!r}; "
                    f"sub-folders of {split}/: {found}"
                )
    return {task: specs[task].task for task in chosen}


def build_mtan_data(
    name: str,
    root: str | Path,
    specs: Mapping[str, DenseTaskSpec],
    *,
    tasks: Sequence[str] | None,
    augment: bool,
    val_seed: int,
    num_classes: int | None,
    inverse_depth: bool = False,
    folder_names: Mapping[str, str] | None = None,
) -> MultiTaskData:
    """Open ``root/train`` and ``root/val`` with the modalities of the chosen tasks and split them (module docstring).

    Args:
        name: the dataset's registry name.
        root: the folder holding ``train/`` and ``val/``.
        specs: every task of the dataset, in canonical order.
        tasks: the task names to use (None: all).
        augment: apply the training augmentation to the train split.
        val_seed: seed of the validation split.
        num_classes: number of segmentation classes, to check labels.
        inverse_depth: the depth maps hold inverse depth (changes how the scale-crop rescales them).
        folder_names: modality → folder name where it differs from the modality's name.
    """
    root = Path(root)
    chosen = mtan_task_list(name, root, specs, tasks, folder_names)
    task_modalities = {task: specs[task].modality for task in chosen}
    modalities = list(dict.fromkeys(task_modalities.values()))
    names = dict(folder_names or {})
    train_folder = DenseFolder(root / "train", modalities, folder_names=names, num_classes=num_classes)
    test_folder = DenseFolder(root / "val", modalities, folder_names=names, num_classes=num_classes)
    if test_folder.size != train_folder.size:
        raise DatasetFormatError(
            f"{test_folder.root}: images are {test_folder.size}; expected the size of {train_folder.root}, "
            f"{train_folder.size}"
        )
    try:
        count = validation_count(len(train_folder.indices))
    except ValueError as error:
        raise DatasetFormatError(f"{train_folder.root}: {error}") from None
    train_indices, val_indices = carve_validation(train_folder.indices, count, seed=val_seed)
    augmentation = DenseAugmentation(inverse_depth=inverse_depth) if augment else None
    height, width = train_folder.size
    return MultiTaskData(
        name=name,
        train=DenseDataset(train_folder, train_indices, task_modalities, augmentation),
        val=DenseDataset(train_folder, val_indices, task_modalities),
        test=DenseDataset(test_folder, test_folder.indices, task_modalities),
        tasks=chosen,
        input_shape=(3, height, width),
    )
