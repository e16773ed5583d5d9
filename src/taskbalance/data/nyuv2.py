"""NYUv2 (Silberman et al. 2012) with 13-class segmentation, depth and surface normals, in MTAN's layout.

Files (MTAN's pre-processed release, Liu et al. 2019; nominal size 288 × 384, read from the files)::

    root/train/{image,label,depth,normal}/{0..794}.npy     795 training images
    root/val/{image,label,depth,normal}/{0..653}.npy       654 images: the TEST split

``image`` is H × W × 3 float in [0, 1], ``label`` H × W with −1 = ignore, ``depth`` H × W × 1 (0 = no depth),
``normal`` H × W × 3 unit vectors (zero = no normal). Validation: 159 of the 795 training images, chosen by the seeded
hash of :mod:`taskbalance.data.splits` (``val_seed``, default 0). Training augmentation (``augment=True``): MTAN's
random scale-crop s ∈ {1.0, 1.2, 1.5} (depth ÷ s) and horizontal flip (normals' x negated), train split only, see
:mod:`taskbalance.data.transforms`.

Tasks: ``segmentation`` (:class:`SemanticSegmentation`, 13 classes, ignore −1), ``depth`` (:class:`Depth`),
``normals`` (:class:`SurfaceNormals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from taskbalance.data.base import MultiTaskData
from taskbalance.data.mtan_layout import DenseTaskSpec, build_mtan_data, mtan_task_list
from taskbalance.data.registry import DATASET_OPTION_CHECKS, DATASET_TASKS, DATASETS
from taskbalance.tasks import Depth, SemanticSegmentation, SurfaceNormals
from taskbalance.tasks.averaging import check_averaging
from taskbalance.tasks.base import Task

NYUV2_CLASSES = 13


def nyuv2_tasks(metric_averaging: str = "split") -> dict[str, DenseTaskSpec]:
    """NYUv2's tasks in canonical order, with the modality folder of each; ``metric_averaging`` is the depth and
    normal metrics' (:mod:`taskbalance.tasks.averaging`)."""
    averaging = check_averaging(metric_averaging, "dataset 'nyuv2': metric_averaging")
    return {
        "segmentation": DenseTaskSpec(SemanticSegmentation("segmentation", NYUV2_CLASSES, ignore_index=-1), "label"),
        "depth": DenseTaskSpec(Depth("depth", averaging=averaging), "depth"),
        "normals": DenseTaskSpec(SurfaceNormals("normals", averaging=averaging), "normal"),
    }


@DATASET_OPTION_CHECKS.register("nyuv2")
def nyuv2_option_check(*, metric_averaging: str = "split") -> None:
    """The option values :func:`nyuv2` checks before reading a file."""
    check_averaging(metric_averaging, "dataset 'nyuv2': metric_averaging")


@DATASET_TASKS.register("nyuv2")
def nyuv2_task_list(
    *, root: str | Path, tasks: Sequence[str] | None, metric_averaging: str = "split"
) -> dict[str, Task]:
    """The tasks :func:`nyuv2` gives for ``root`` and ``tasks``, after checking the folders they need."""
    return mtan_task_list("nyuv2", root, nyuv2_tasks(metric_averaging), tasks)


@DATASETS.register("nyuv2")
def nyuv2(
    root: str | Path,
    *,
    augment: bool = True,
    val_seed: int = 0,
    tasks: Sequence[str] | None = None,
    metric_averaging: str = "split",
) -> MultiTaskData:
    """NYUv2 from MTAN's pre-processed files under ``root`` (module docstring).

    Args:
        root: folder holding ``train/`` and ``val/``.
        augment: random scale-crop and flip on the train split.
        val_seed: seed of the validation split carved from ``train``.
        tasks: subset of ``("segmentation", "depth", "normals")`` (default all); only their folders are read.
        metric_averaging: ``"split"`` (default: the depth and normal metrics over every valid pixel of a split, as
            LibMTL) or ``"batch"`` (the mean of each evaluation batch's values, as MTAN's and Nash-MTL's trainers;
            with ``eval_batch_size = 2`` as theirs). Segmentation is scored from one confusion matrix either way.

    Raises:
        DatasetFormatError: a folder or file is missing or malformed (the message names the path).

    Example (needs the files on disk, so it is not run as a doctest)::

        data = nyuv2("data/nyuv2")
        len(data.train), len(data.val), len(data.test), data.input_shape
        # → (636, 159, 654, (3, 288, 384))
    """
    return build_mtan_data(
        "nyuv2", root, nyuv2_tasks(metric_averaging), tasks=tasks, augment=augment, val_seed=val_seed,
        num_classes=NYUV2_CLASSES,
    )
