"""Datasets: each registered by name and built as ``create(name, **options) -> MultiTaskData``."""

from taskbalance.data.base import MultiTaskData
from taskbalance.registry import Registry

DATASETS: Registry[MultiTaskData] = Registry("dataset")


def create(name: str, **options: object) -> MultiTaskData:
    """Build a registered dataset by name, e.g. ``create("nyuv2", root="data/nyuv2")``."""
    return DATASETS.create(name, **options)


# Dataset modules register themselves on import (keep below DATASETS).
# (one import line per dataset module)
from taskbalance.data import celeba as celeba  # noqa: E402
from taskbalance.data import cityscapes as cityscapes  # noqa: E402
from taskbalance.data import multifashion as multifashion  # noqa: E402
from taskbalance.data import nyuv2 as nyuv2  # noqa: E402
from taskbalance.data.errors import DatasetFormatError as DatasetFormatError  # noqa: E402

__all__ = ["DATASETS", "MultiTaskData", "create"]
