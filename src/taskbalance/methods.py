"""One registry view over loss weightings and gradient methods, as configs and the CLI name them.

``create(name, tasks, options)`` builds either kind from a name: loss weightings from
:mod:`taskbalance.weighting`, gradient methods from :mod:`taskbalance.aggregation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from taskbalance.aggregation import AGGREGATIONS
from taskbalance.tasks import BinaryAttribute, Classification, SemanticSegmentation
from taskbalance.tasks.base import Task
from taskbalance.weighting import WEIGHTINGS, LossWeighting

# Display names as the paper writes them.
LABELS = {
    "ew": "EW",
    "scalarization": "Scalarization",
    "uw": "UW",
    "uwo": "UW-O",
    "uwso": "UW-SO",
    "dwa": "DWA",
    "rlw": "RLW",
    "imtll": "IMTL-L",
    "gls": "GLS",
    "stl": "STL",
    "mgda": "MGDA",
    "mgda_ub": "MGDA-UB",
    "pcgrad": "PCGrad",
    "cagrad": "CAGrad",
    "imtlg": "IMTL-G",
    "nashmtl": "Nash-MTL",
    "alignedmtl": "Aligned-MTL",
    "upgrad": "UPGrad",
    "graddrop": "GradDrop",
    "gradnorm": "GradNorm",
    "dbmtl": "DB-MTL",
    "famo": "FAMO",
    "stch": "STCH",
}


class MethodError(ValueError):
    """An unknown method name or a hyper-parameter the method does not take."""


@dataclass(frozen=True)
class MethodInfo:
    """What ``taskbalance methods`` prints about a method."""

    name: str
    label: str
    kind: str
    formula: str
    paper: str
    hyperparameters: dict[str, str]


def names() -> list[str]:
    """Every method name: loss weightings first, then gradient methods."""
    return WEIGHTINGS.names() + [n for n in AGGREGATIONS.names() if n not in WEIGHTINGS]


def label(name: str) -> str:
    return LABELS.get(name.lower(), name)


def _lookup(name: str) -> tuple[str, type]:
    if name in WEIGHTINGS:
        return "loss weighting", WEIGHTINGS.get(name)  # type: ignore[return-value]
    if name in AGGREGATIONS:
        return "gradient method", AGGREGATIONS.get(name)  # type: ignore[return-value]
    raise MethodError(f"unknown method {name!r}; known methods: {', '.join(names())}")


def info(name: str) -> MethodInfo:
    kind, cls = _lookup(name)
    return MethodInfo(
        name=name.lower(),
        label=label(name),
        kind=kind,
        formula=getattr(cls, "formula", ""),
        paper=getattr(cls, "paper", ""),
        hyperparameters=dict(getattr(cls, "hyperparameters", {})),
    )


def uw_kind(task: Task) -> str:
    """Kendall et al.'s likelihood form for a task: classification for categorical outputs, else regression."""
    categorical = isinstance(task, Classification | SemanticSegmentation | BinaryAttribute)
    return "classification" if categorical else "regression"


def create(name: str, tasks: Mapping[str, Task], options: Mapping[str, Any] | None = None) -> nn.Module:
    """Build a method for the given tasks.

    UW gets each task's likelihood form from the task kind (:func:`uw_kind`) unless ``options`` sets ``kinds``.
    A gradient method composes with a loss weighting named in its options, so configs can say
    ``method = "pcgrad"`` with ``method_options = {weighting = "uwso", weighting_options = {temperature = 2.0}}``:
    the weighting's weights scale the per-task gradients before aggregation.

    Example:
        >>> from taskbalance.tasks import Classification, Regression
        >>> m = create("uwso", {"a": Classification("a", 10), "b": Regression("b")}, {"temperature": 2.0})
        >>> type(m).__name__
        'UWSO'
    """
    kind, cls = _lookup(name)
    opts = dict(options or {})
    if name.lower() == "uw" and "kinds" not in opts:
        opts["kinds"] = [uw_kind(task) for task in tasks.values()]
    weighting_options = opts.pop("weighting_options", None)
    if isinstance(opts.get("weighting"), str):
        if kind != "gradient method":
            raise MethodError(f"method {name!r}: only gradient methods compose with a weighting")
        weighting_name = opts["weighting"]
        loss_weightings = [n for n in names() if issubclass(_lookup(n)[1], LossWeighting)]
        if weighting_name.lower() not in loss_weightings:
            raise MethodError(f"method {name!r}: unknown weighting {weighting_name!r}; known: {loss_weightings}")
        opts["weighting"] = create(weighting_name, tasks, weighting_options)
    elif weighting_options is not None:
        raise MethodError(f"method {name!r}: weighting_options given without a weighting name")
    try:
        return cls(len(tasks), task_names=list(tasks), **opts)
    except TypeError as error:
        raise MethodError(f"method {name!r}: bad method_options {opts}: {error}") from None
