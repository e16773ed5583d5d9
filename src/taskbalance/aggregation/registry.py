"""``AGGREGATIONS``: registry name → gradient-method class; each class registers itself with
``@AGGREGATIONS.register``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskbalance.registry import Registry

if TYPE_CHECKING:
    from taskbalance.aggregation.base import GradientAggregation

AGGREGATIONS: Registry[GradientAggregation] = Registry("gradient method")
