"""Loss-based weighting methods: K per-task losses in, one scalar to backpropagate out.

Adding UW-SO to an existing training loop (``losses`` = the list of per-task loss tensors)::

    weighting = UWSO(3, temperature=2.0)
    weighting(torch.stack(losses)).backward()

Every method is a ``torch.nn.Module`` built as ``Method(num_tasks, **hyper_parameters)`` (or by registry name with
:func:`create`), exposes the detached weights of its last call as ``last_weights``, and has an ``end_epoch`` hook
(used by DWA). Methods: EW, Scalarization, UW, UW-O, UW-SO, DWA, RLW, IMTL-L, GLS, FAMO, STCH, SI,
GO4Align; see docs/methods.md.
"""

from __future__ import annotations

from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.dwa import DWA
from taskbalance.weighting.ew import EW
from taskbalance.weighting.famo import FAMO
from taskbalance.weighting.gls import GLS
from taskbalance.weighting.go4align import GO4Align
from taskbalance.weighting.imtll import IMTLL
from taskbalance.weighting.registry import WEIGHTINGS
from taskbalance.weighting.rlw import RLW
from taskbalance.weighting.scalarization import Scalarization
from taskbalance.weighting.si import SI
from taskbalance.weighting.stch import STCH
from taskbalance.weighting.uw import UW
from taskbalance.weighting.uwo import UWO
from taskbalance.weighting.uwso import UWSO


def create(name: str, num_tasks: int, **options: object) -> LossWeighting:
    """Build a loss weighting by registry name: :func:`taskbalance.methods.create` restricted to this package.

    Example:
        >>> create("uwso", num_tasks=3, temperature=2.0)
        UWSO(num_tasks=3, temperature=2.0)
    """
    from taskbalance.methods import create as create_method  # the one builder; imports both method packages

    if name not in WEIGHTINGS:
        raise KeyError(f"unknown loss weighting {name!r}; known: {', '.join(WEIGHTINGS.names())}")
    return create_method(name, num_tasks, **options)  # type: ignore[return-value]


__all__ = [
    "DWA",
    "EW",
    "FAMO",
    "GLS",
    "IMTLL",
    "RLW",
    "SI",
    "STCH",
    "UW",
    "UWO",
    "UWSO",
    "WEIGHTINGS",
    "GO4Align",
    "LossWeighting",
    "Scalarization",
    "create",
]
