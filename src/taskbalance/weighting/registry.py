"""``WEIGHTINGS``: registry name → loss-weighting class; each class registers itself with ``@WEIGHTINGS.register``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskbalance.registry import Registry

if TYPE_CHECKING:
    from taskbalance.weighting.base import LossWeighting

WEIGHTINGS: Registry[LossWeighting] = Registry("loss weighting")
