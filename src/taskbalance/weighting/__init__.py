"""Loss-based weighting methods: K per-task losses in, one scalar to backpropagate out.

Adding UW-SO to an existing training loop (``losses`` = the list of per-task loss tensors)::

    weighting = UWSO(3, temperature=2.0)
    weighting(torch.stack(losses)).backward()

Every method is a ``torch.nn.Module`` built as ``Method(num_tasks, **hyper_parameters)`` (or by registry name with
:func:`create`), exposes the detached weights of its last call as ``last_weights``, and has an ``end_epoch`` hook
(used by DWA). Methods: EW, Scalarization, UW, UW-O, UW-SO, DWA, RLW, IMTL-L, GLS; see docs/methods.md.
"""

from __future__ import annotations

from taskbalance.weighting.base import WEIGHTINGS, LossWeighting
from taskbalance.weighting.dwa import DWA
from taskbalance.weighting.ew import EW
from taskbalance.weighting.gls import GLS
from taskbalance.weighting.imtll import IMTLL
from taskbalance.weighting.rlw import RLW
from taskbalance.weighting.scalarization import Scalarization
from taskbalance.weighting.uw import UW
from taskbalance.weighting.uwo import UWO
from taskbalance.weighting.uwso import UWSO


def create(name: str, num_tasks: int, **options: object) -> LossWeighting:
    """Build a loss weighting by registry name (ew, scalarization, uw, uwo, uwso, dwa, rlw, imtll, gls).

    Example:
        >>> create("uwso", num_tasks=3, temperature=2.0)
        UWSO(num_tasks=3, temperature=2.0)
    """
    return WEIGHTINGS.create(name, num_tasks, **options)


__all__ = [
    "DWA",
    "EW",
    "GLS",
    "IMTLL",
    "RLW",
    "UW",
    "UWO",
    "UWSO",
    "WEIGHTINGS",
    "LossWeighting",
    "Scalarization",
    "create",
]
