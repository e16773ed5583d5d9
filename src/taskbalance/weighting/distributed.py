"""Sharing weighting inputs across the ranks of a ``torch.distributed`` job, so every rank uses the same weights."""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def mean_across_ranks(values: Tensor) -> Tensor:
    """The element-wise mean of ``values`` over all ranks (a detached copy; ``values`` itself outside DDP).

    Uses SUM then a division because gloo has no AVG reduction.

    Example:
        >>> import torch
        >>> mean_across_ranks(torch.tensor([1.0, 2.0]))  # no process group: unchanged
        tensor([1., 2.])
    """
    if not is_distributed():
        return values
    shared = values.detach().clone()
    dist.all_reduce(shared, op=dist.ReduceOp.SUM)
    return shared / dist.get_world_size()


def broadcast_from_first_rank(values: Tensor) -> Tensor:
    """Rank 0's ``values`` on every rank (a detached copy; ``values`` itself outside DDP)."""
    if not is_distributed():
        return values
    shared = values.detach().clone()
    dist.broadcast(shared, src=0)
    return shared
