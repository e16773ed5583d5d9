"""Datasets: each registered by name and built as ``create(name, **options) -> MultiTaskData``."""

from taskbalance.data import celeba, cityscapes, multifashion, nyuv2  # noqa: F401  (each module registers itself)
from taskbalance.data.base import MultiTaskData
from taskbalance.data.errors import DatasetFormatError
from taskbalance.data.registry import DATASETS


def create(name: str, **options: object) -> MultiTaskData:
    """Build a registered dataset by name, e.g. ``create("nyuv2", root="data/nyuv2")``."""
    return DATASETS.create(name, **options)


__all__ = ["DATASETS", "DatasetFormatError", "MultiTaskData", "create"]
