"""Datasets: each registered by name and built as ``create(name, **options) -> MultiTaskData``."""

from taskbalance.data.base import MultiTaskData
from taskbalance.registry import Registry

DATASETS: Registry[MultiTaskData] = Registry("dataset")


def create(name: str, **options: object) -> MultiTaskData:
    """Build a registered dataset by name, e.g. ``create("nyuv2", root="data/nyuv2")``."""
    return DATASETS.create(name, **options)


# Dataset modules register themselves on import (keep below DATASETS).
# (one import line per dataset module)

__all__ = ["DATASETS", "MultiTaskData", "create"]
