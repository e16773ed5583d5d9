"""``DATASETS``: registry name → dataset builder; each builder registers itself with ``@DATASETS.register``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskbalance.registry import Registry

if TYPE_CHECKING:
    from taskbalance.data.base import MultiTaskData

DATASETS: Registry[MultiTaskData] = Registry("dataset")
