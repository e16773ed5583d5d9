"""CelebA (Liu et al. 2015) as 40 binary attribute tasks on 64 × 64 faces, from the official files.

Files under ``root`` (see :mod:`taskbalance.data.celeba_files`): ``list_attr_celeba.txt`` (−1/1 → 0/1),
``list_eval_partition.txt`` (0/1/2 = train/val/test: the official validation split is used, nothing is carved), and
``img_align_celeba/`` with the aligned JPEGs. Images are read with Pillow and resized to 64 × 64 (bilinear); by
default the whole 178 × 218 aligned image is resized (aspect ratio not kept), ``center_crop=True`` cuts the central
square first. Pixel values are scaled to [0, 1]; there is no augmentation.

Tasks: one :class:`BinaryAttribute` per attribute, named as in the file's header (``5_o_Clock_Shadow`` …
``Young``), in file order. Each target is a 0-dim float32 0/1 tensor, batched to ``[B]``. Each attribute reports
its accuracy; ``attribute_metrics=["accuracy", "f1"]`` adds (or ``["f1"]`` reports only) its F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from taskbalance.data.base import MultiTaskData
from taskbalance.data.celeba_dataset import CelebADataset
from taskbalance.data.celeba_files import IMAGE_FOLDER, PARTITION_FILE, read_annotations, read_attribute_names
from taskbalance.data.errors import DatasetFormatError
from taskbalance.data.mtan_layout import choose_tasks
from taskbalance.data.registry import DATASET_OPTION_CHECKS, DATASET_TASKS, DATASETS
from taskbalance.tasks import BinaryAttribute
from taskbalance.tasks.base import Task
from taskbalance.tasks.binary_attribute import check_attribute_metrics

CELEBA_SIZE = 64


def check_image_options(image_size: object, center_crop: object) -> None:
    """``image_size`` an integer ≥ 1 and ``center_crop`` a boolean, or a ``ValueError`` naming the option (a float
    size from a TOML file would otherwise fail only inside Pillow, at the first batch)."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"dataset 'celeba': image_size must be an integer ≥ 1, got {image_size!r}")
    if not isinstance(center_crop, bool):
        raise ValueError(f"dataset 'celeba': center_crop must be true or false, got {center_crop!r}")


@DATASET_OPTION_CHECKS.register("celeba")
def celeba_option_check(
    *, image_size: int = CELEBA_SIZE, center_crop: bool = False, attribute_metrics: Sequence[str] = ("accuracy",)
) -> None:
    """The option values :func:`celeba` checks before reading a file."""
    _checked_metrics(image_size, center_crop, attribute_metrics)


def _checked_metrics(image_size: object, center_crop: object, attribute_metrics: object) -> tuple[str, ...]:
    """Every option value check of :func:`celeba`; the attribute metrics as the tasks take them."""
    check_image_options(image_size, center_crop)
    return check_attribute_metrics(attribute_metrics, "dataset 'celeba': attribute_metrics")


@DATASET_TASKS.register("celeba")
def celeba_task_list(
    *, root: str | Path, tasks: Sequence[str] | None, image_size: int = CELEBA_SIZE, center_crop: bool = False,
    attribute_metrics: Sequence[str] = ("accuracy",),
) -> dict[str, Task]:
    """The tasks :func:`celeba` gives: the chosen attributes, read from the attribute file's header line only, after
    checking the image options and that the partition file and the image folder are there."""
    metrics = _checked_metrics(image_size, center_crop, attribute_metrics)
    names = read_attribute_names(root)
    partition, images = Path(root) / PARTITION_FILE, Path(root) / IMAGE_FOLDER
    if not partition.is_file():
        raise DatasetFormatError(f"{partition}: missing; expected CelebA's partition file ('<image> 0|1|2' lines)")
    if not images.is_dir():
        raise DatasetFormatError(f"{images}: missing; expected CelebA's folder of aligned JPEGs")
    return {name: BinaryAttribute(name, metrics) for name in choose_tasks("celeba", names, tasks)}


@DATASETS.register("celeba")
def celeba(
    root: str | Path,
    *,
    tasks: Sequence[str] | None = None,
    image_size: int = CELEBA_SIZE,
    center_crop: bool = False,
    attribute_metrics: Sequence[str] = ("accuracy",),
) -> MultiTaskData:
    """CelebA from the official files under ``root`` (module docstring).

    Args:
        root: folder with ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and ``img_align_celeba/``.
        tasks: attribute names to use (default all 40, in file order).
        image_size: side of the square input (64 in the paper).
        center_crop: cut the central square before resizing.
        attribute_metrics: each attribute's metrics, from ``"accuracy"`` (the default) and ``"f1"``
            (:class:`BinaryAttribute`); ``["f1"]`` scores as FAMO's CelebA code does.

    Raises:
        DatasetFormatError: a file is missing or malformed (the message names the path, and the line where it
            applies).
        ValueError: ``image_size`` is not an integer ≥ 1, ``center_crop`` not a boolean, or ``attribute_metrics``
            names an unknown metric.

    Example (needs the files on disk, so it is not run as a doctest)::

        data = celeba("data/celeba")
        len(data.train), len(data.val), len(data.test), len(data.tasks), data.input_shape
        # → (162770, 19867, 19962, 40, (3, 64, 64))
    """
    metrics = _checked_metrics(image_size, center_crop, attribute_metrics)
    annotations = read_annotations(root)
    chosen = choose_tasks("celeba", annotations.attribute_names, tasks)
    columns = [annotations.attribute_names.index(name) for name in chosen]
    splits = {}
    for split in ("train", "val", "test"):
        rows = annotations.rows(split)
        splits[split] = CelebADataset(
            Path(root) / IMAGE_FOLDER,
            [annotations.file_names[row] for row in rows],
            annotations.attributes[rows][:, columns],
            chosen,
            size=image_size,
            center_crop=center_crop,
        )
    return MultiTaskData(
        name="celeba",
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        tasks={name: BinaryAttribute(name, metrics) for name in chosen},
        input_shape=(3, image_size, image_size),
    )
