"""Every method by name: :func:`create` builds a loss weighting or a gradient method; :func:`info` describes one.

Names are those of the two registries, :data:`~taskbalance.weighting.WEIGHTINGS` (loss weightings) and
:data:`~taskbalance.aggregation.AGGREGATIONS` (gradient methods); a method's kind comes from its class
(:attr:`taskbalance.method.Method.kind`), not from the registry it is listed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskbalance.aggregation import AGGREGATIONS
from taskbalance.method import Method
from taskbalance.tasks.base import Task
from taskbalance.weighting import WEIGHTINGS, LossWeighting

# Display names as the papers write them.
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
    "famo": "FAMO",
    "stch": "STCH",
    "si": "SI",
    "go4align": "GO4Align",
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
    "fairgrad": "FairGrad",
    "gradvac": "GradVac",
    "moco": "MoCo",
    "sdmgrad": "SDMGrad",
    "config": "ConFIG",
    "dualproj": "DualProj",
    "excessmtl": "ExcessMTL",
}


class MethodError(ValueError):
    """A hyper-parameter the method does not take or rejects (the message names the method and the option)."""


class UnknownMethodError(MethodError):
    """A method name that is in neither registry (the message lists the known names)."""


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
    return WEIGHTINGS.names() + AGGREGATIONS.names()


def label(name: str) -> str:
    """The display name of a method (``"uwso"`` → ``"UW-SO"``): from :data:`LABELS`, else the class's ``label``
    (a plugin's method sets its own); a method without one, or an unknown name, is returned unchanged."""
    key = name.lower()
    if key in LABELS:
        return LABELS[key]
    if key in WEIGHTINGS or key in AGGREGATIONS:
        return method_class(key).label or name
    return name


def method_class(name: str) -> type[Method]:
    """The class registered under ``name`` in either registry; :class:`MethodError` listing the names otherwise."""
    for registry in (WEIGHTINGS, AGGREGATIONS):
        if name in registry:
            return registry.get(name)  # type: ignore[return-value]
    raise UnknownMethodError(f"unknown method {name!r}; known methods: {', '.join(names())}")


def info(name: str) -> MethodInfo:
    """Name, label, kind, formula, paper and hyper-parameters of a method."""
    cls = method_class(name)
    return MethodInfo(
        name=name.lower(),
        label=label(name),
        kind=cls.kind,
        formula=cls.formula,
        paper=cls.paper,
        hyperparameters=dict(cls.hyperparameters),
    )


def create(name: str, tasks: int | Sequence[str] | Mapping[str, Task], **options: Any) -> Method:
    """Build any method by name for K tasks.

    Args:
        name: a registry name (``taskbalance methods`` lists them).
        tasks: the tasks: their number K, their names, or the ``{name: Task}`` mapping of a dataset. With task
            objects, UW takes each task's likelihood form from :attr:`Task.likelihood` unless ``kinds`` is given.
        options: the method's hyper-parameters and common keywords (``validate``, ``mode``, …). A gradient method
            composes with a loss weighting given by name: ``weighting="uwso"`` with
            ``weighting_options={"temperature": 2.0}``; the weighting's weights scale the per-task gradients
            before aggregation.

    Raises:
        MethodError: unknown name, an option the method does not take, or a value it rejects (the message names
            the method and the option).

    Example:
        >>> m = create("uwso", 3, temperature=2.0)
        >>> type(m).__name__, m.kind
        ('UWSO', 'loss weighting')
        >>> create("pcgrad", ["left", "right"], weighting="uw").weighting
        UW(num_tasks=2, kinds=['regression', 'regression'])
    """
    cls = method_class(name)
    task_objects = dict(tasks) if isinstance(tasks, Mapping) else None
    if isinstance(tasks, int):
        num_tasks, task_names = tasks, None
    else:
        task_names = [str(task) for task in tasks]
        num_tasks = len(task_names)
    opts = dict(options)
    if cls.uses_task_likelihoods and task_objects is not None and "kinds" not in opts:
        opts["kinds"] = [task.likelihood for task in task_objects.values()]
    weighting_options = opts.pop("weighting_options", None)
    if isinstance(opts.get("weighting"), str):
        if cls.kind != "gradient method":
            raise MethodError(f"method {name!r}: only gradient methods compose with a weighting")
        weighting_name = opts["weighting"]
        if weighting_name not in WEIGHTINGS:
            raise MethodError(f"method {name!r}: unknown weighting {weighting_name!r}; known: {WEIGHTINGS.names()}")
        nested = dict(weighting_options or {})
        if "sync_across_ranks" in opts:
            nested.setdefault("sync_across_ranks", opts["sync_across_ranks"])
        opts["weighting"] = create(weighting_name, task_objects or task_names or num_tasks, **nested)
    elif weighting_options is not None:
        raise MethodError(f"method {name!r}: weighting_options given without a weighting name")
    if task_names is not None:
        opts.setdefault("task_names", task_names)
    try:
        return cls(num_tasks, **opts)
    except TypeError as error:
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if unexpected is None:
            raise MethodError(f"method {name!r}: {error}") from None
        known = ", ".join(cls.hyperparameters) or "none"
        raise MethodError(
            f"method {name!r} has no option {unexpected.group(1)!r} (its hyper-parameters: {known})"
        ) from None
    except ValueError as error:  # the class's own message names it and the option
        raise MethodError(str(error)) from None


__all__ = [
    "LABELS",
    "LossWeighting",
    "MethodError",
    "MethodInfo",
    "UnknownMethodError",
    "create",
    "info",
    "label",
    "method_class",
    "names",
]
