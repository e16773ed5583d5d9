"""Cityscapes (Cordts et al. 2016) with 7-class segmentation and inverse depth, in MTAN's layout.

Files (MTAN's pre-processed release, Liu et al. 2019; nominal size 128 × 256, read from the files)::

    root/train/{image,label,depth}/{0..2974}.npy     2975 training images
    root/val/{image,label,depth}/{0..499}.npy        500 images: the TEST split

``image`` is H × W × 3 float in [0, 1], ``label`` H × W with 7 classes and −1 = ignore, ``depth`` H × W × 1 inverse
depth (disparity-like; 0 = no ground truth). MTAN's release names the 7-class label folder ``label_7`` (beside
``label_2`` and ``label_19``): with ``label_folder=None`` the loader uses ``label`` if ``root/train/label`` exists,
else ``label_7``. Validation: 595 of the 2975 training images, chosen by the seeded hash of
:mod:`taskbalance.data.splits` (``val_seed``, default 0). Training augmentation (``augment=True``): random
scale-crop s ∈ {1.0, 1.2, 1.5} and horizontal flip, train split only; inverse depth is multiplied by s (depth ÷ s),
see :mod:`taskbalance.data.transforms`.

Tasks: ``segmentation`` (:class:`SemanticSegmentation`, 7 classes, ignore −1), ``depth`` (:class:`Depth` with
``inverse=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from taskbalance.data.base import MultiTaskData
from taskbalance.data.mtan_layout import DenseTaskSpec, build_mtan_data, mtan_task_list
from taskbalance.data.registry import DATASET_OPTION_CHECKS, DATASET_TASKS, DATASETS
from taskbalance.tasks import Depth, SemanticSegmentation
from taskbalance.tasks.averaging import check_averaging
from taskbalance.tasks.base import Task

CITYSCAPES_CLASSES = 7


def cityscapes_tasks(metric_averaging: str = "split") -> dict[str, DenseTaskSpec]:
    """Cityscapes' tasks in canonical order, with the modality folder of each; ``metric_averaging`` is the depth
    metrics' (:mod:`taskbalance.tasks.averaging`)."""
    averaging = check_averaging(metric_averaging, "dataset 'cityscapes': metric_averaging")
    return {
        "segmentation": DenseTaskSpec(
            SemanticSegmentation("segmentation", CITYSCAPES_CLASSES, ignore_index=-1), "label"
        ),
        "depth": DenseTaskSpec(Depth("depth", inverse=True, averaging=averaging), "depth"),
    }


def _label_folder(root: Path, label_folder: str | None) -> str:
    if label_folder is not None:
        return label_folder
    return "label" if (root / "train" / "label").is_dir() or not (root / "train" / "label_7").is_dir() else "label_7"


@DATASET_OPTION_CHECKS.register("cityscapes")
def cityscapes_option_check(*, metric_averaging: str = "split") -> None:
    """The option values :func:`cityscapes` checks before reading a file."""
    check_averaging(metric_averaging, "dataset 'cityscapes': metric_averaging")


@DATASET_TASKS.register("cityscapes")
def cityscapes_task_list(
    *, root: str | Path, tasks: Sequence[str] | None, label_folder: str | None = None,
    metric_averaging: str = "split",
) -> dict[str, Task]:
    """The tasks :func:`cityscapes` gives for ``root`` and ``tasks``, after checking the folders they need."""
    return mtan_task_list("cityscapes", root, cityscapes_tasks(metric_averaging), tasks,
                          folder_names={"label": _label_folder(Path(root), label_folder)})


@DATASETS.register("cityscapes")
def cityscapes(
    root: str | Path,
    *,
    augment: bool = True,
    val_seed: int = 0,
    tasks: Sequence[str] | None = None,
    label_folder: str | None = None,
    metric_averaging: str = "split",
) -> MultiTaskData:
    """Cityscapes from MTAN's pre-processed files under ``root`` (module docstring).

    Args:
        root: folder holding ``train/`` and ``val/``.
        augment: random scale-crop and flip on the train split.
        val_seed: seed of the validation split carved from ``train``.
        tasks: subset of ``("segmentation", "depth")`` (default both); only their folders are read.
        label_folder: name of the 7-class label folder (None: ``label``, or ``label_7`` when only that exists).
        metric_averaging: ``"split"`` (default: the depth metrics over every valid pixel of a split, as LibMTL) or
            ``"batch"`` (the mean of each evaluation batch's values, as FAMO's Cityscapes trainer).

    Raises:
        DatasetFormatError: a folder or file is missing or malformed (the message names the path).

    Example (needs the files on disk, so it is not run as a doctest)::

        data = cityscapes("data/cityscapes")
        len(data.train), len(data.val), len(data.test), data.input_shape
        # → (2380, 595, 500, (3, 128, 256))
    """
    root = Path(root)
    return build_mtan_data(
        "cityscapes",
        root,
        cityscapes_tasks(metric_averaging),
        tasks=tasks,
        augment=augment,
        val_seed=val_seed,
        num_classes=CITYSCAPES_CLASSES,
        inverse_depth=True,
        folder_names={"label": _label_folder(root, label_folder)},
    )
