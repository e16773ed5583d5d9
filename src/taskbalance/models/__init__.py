"""Models: hard parameter sharing, registered by name and built as ``create(name, heads=..., **options)``."""

from taskbalance.models.base import MultiTaskModel
from taskbalance.registry import Registry

MODELS: Registry[MultiTaskModel] = Registry("model")


def create(name: str, **options: object) -> MultiTaskModel:
    """Build a registered model by name, e.g. ``create("segnet", heads={"depth": HeadSpec(1, dense=True)})``."""
    return MODELS.create(name, **options)


# Model modules register themselves on import (keep below MODELS).
# (one import line per model module)
from taskbalance.models import deeplab  # noqa: E402, F401, I001
from taskbalance.models import resnet  # noqa: E402, F401
from taskbalance.models import segnet  # noqa: E402, F401
from taskbalance.models import small_cnn  # noqa: E402, F401

__all__ = ["MODELS", "MultiTaskModel", "create"]
