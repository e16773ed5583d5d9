"""``MODELS``: registry name → model builder; each builder registers itself with ``@MODELS.register``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskbalance.registry import Registry

if TYPE_CHECKING:
    from taskbalance.models.base import MultiTaskModel

MODELS: Registry[MultiTaskModel] = Registry("model")
