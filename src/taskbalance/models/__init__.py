"""Models: hard parameter sharing, registered by name and built as ``create(name, heads=..., **options)``."""

from taskbalance.models import deeplab, mtan, resnet, segnet, small_cnn  # noqa: F401  (each module registers its models)
from taskbalance.models.base import MultiTaskModel
from taskbalance.models.registry import MODELS


def create(name: str, **options: object) -> MultiTaskModel:
    """Build a registered model by name, e.g. ``create("segnet", heads={"depth": HeadSpec(1, dense=True)})``."""
    return MODELS.create(name, **options)


__all__ = ["MODELS", "MultiTaskModel", "create"]
