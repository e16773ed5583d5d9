"""Task kinds: loss, metrics with direction, and split-level accumulation.

Every kind is a :class:`~taskbalance.tasks.base.Task`; :data:`TASKS` maps lower-case kind names to the classes and
:func:`create` builds one by name.

Example:
    >>> from taskbalance.tasks import create
    >>> create("SemanticSegmentation", "segmentation", num_classes=13)
    SemanticSegmentation(name='segmentation', num_classes=13, ignore_index=-1)
    >>> create("surface_normals", "normal").metrics[0]
    MetricSpec(name='mean_angle', higher_is_better=False)
"""

from __future__ import annotations

from taskbalance.tasks.base import MetricMeter, Task
from taskbalance.tasks.binary_attribute import BinaryAttribute
from taskbalance.tasks.classification import Classification
from taskbalance.tasks.depth import Depth
from taskbalance.tasks.normals import SurfaceNormals
from taskbalance.tasks.registry import TASKS
from taskbalance.tasks.regression import Regression
from taskbalance.tasks.segmentation import SemanticSegmentation


def create(kind: str, name: str, **options: object) -> Task:
    """A task of the given kind, e.g. ``create("depth", "depth", inverse=True)``.

    ``kind`` is the class name in any case, with or without underscores (``"SemanticSegmentation"``,
    ``"semantic_segmentation"``). Unknown kinds raise ``KeyError`` listing the known ones; options the kind does
    not take raise ``ValueError`` naming the kind.
    """
    factory = TASKS.get(kind.replace("_", ""))
    try:
        return factory(name, **options)
    except TypeError as error:
        raise ValueError(f"task kind {kind!r} does not accept options {sorted(options)}: {error}") from None


__all__ = [
    "TASKS",
    "BinaryAttribute",
    "Classification",
    "Depth",
    "MetricMeter",
    "Regression",
    "SemanticSegmentation",
    "SurfaceNormals",
    "Task",
    "create",
]
