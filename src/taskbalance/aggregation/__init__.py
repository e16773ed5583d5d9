"""Gradient methods for multi-task learning: per-task gradients of the shared part, combined into one update.

Use in a training step instead of ``loss.backward()``::

    rep = model.shared(x)
    preds = model.decode(rep)
    losses = torch.stack([task.loss(preds[n], targets[n]) for n in names])
    method.step(losses, shared_parameters=list(model.shared_parameters()), representation=rep)
    optimizer.step()

Every method is a :class:`GradientAggregation` built as ``Method(num_tasks, weighting=..., mode=..., **hp)`` (or by
name with :func:`create`); ``mode="representation"`` takes the per-task gradients w.r.t. the shared representation
(cheap), ``"parameters"`` w.r.t. the shared parameters. Methods: MGDA, MGDA-UB, PCGrad, CAGrad, IMTL-G, Nash-MTL,
Aligned-MTL, UPGrad, GradDrop, GradNorm, DB-MTL, FairGrad, GradVac, MoCo, SDMGrad, ConFIG, DualProj, ExcessMTL.
(FAMO, STCH and SI need only one backward: they are loss weightings, in :mod:`taskbalance.weighting`.)
"""

from __future__ import annotations

from taskbalance.aggregation.alignedmtl import AlignedMTL
from taskbalance.aggregation.base import GradientAggregation, GramAggregation
from taskbalance.aggregation.cagrad import CAGrad
from taskbalance.aggregation.configgrad import ConFIG
from taskbalance.aggregation.dbmtl import DBMTL
from taskbalance.aggregation.dualproj import DualProj
from taskbalance.aggregation.excessmtl import ExcessMTL
from taskbalance.aggregation.fairgrad import FairGrad
from taskbalance.aggregation.graddrop import GradDrop
from taskbalance.aggregation.gradnorm import GradNorm
from taskbalance.aggregation.gradvac import GradVac
from taskbalance.aggregation.imtlg import IMTLG
from taskbalance.aggregation.mgda import MGDA, MGDAUB
from taskbalance.aggregation.moco import MoCo
from taskbalance.aggregation.nashmtl import NashMTL
from taskbalance.aggregation.pcgrad import PCGrad
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.sdmgrad import SDMGrad
from taskbalance.aggregation.upgrad import UPGrad


def create(name: str, num_tasks: int, **options: object) -> GradientAggregation:
    """Build a gradient method by registry name: :func:`taskbalance.methods.create` restricted to this package.

    Example:
        >>> create("cagrad", num_tasks=3, c=0.5, mode="representation")
        CAGrad(num_tasks=3, mode='representation', c=0.5, rescale=True)
    """
    from taskbalance.methods import create as create_method  # the one builder; imports both method packages

    if name not in AGGREGATIONS:
        raise KeyError(f"unknown gradient method {name!r}; known: {', '.join(AGGREGATIONS.names())}")
    return create_method(name, num_tasks, **options)  # type: ignore[return-value]


__all__ = [
    "AGGREGATIONS",
    "DBMTL",
    "IMTLG",
    "MGDA",
    "MGDAUB",
    "AlignedMTL",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "ExcessMTL",
    "FairGrad",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GradientAggregation",
    "GramAggregation",
    "MoCo",
    "NashMTL",
    "PCGrad",
    "SDMGrad",
    "UPGrad",
    "create",
]
