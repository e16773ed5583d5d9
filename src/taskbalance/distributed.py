"""Collectives for data-parallel training: what every rank must agree on, and how many bytes it costs.

Inside an initialised ``torch.distributed`` process group with more than one rank (e.g. under ``torchrun``) these
functions reduce across ranks; outside one they return their input unchanged, so the same code runs in one process.
Every reduction goes through :func:`all_reduce_mean`/:func:`all_reduce_sum`, which count the bytes they send in
:data:`traffic` (read by ``benchmarks/ddp_scaling.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class Traffic:
    """Bytes handed to all-reduce and broadcast calls since the last :meth:`reset` (this rank's payload)."""

    bytes: int = 0
    calls: int = 0

    def add(self, tensor: Tensor) -> None:
        self.bytes += tensor.numel() * tensor.element_size()
        self.calls += 1

    def reset(self) -> None:
        self.bytes = self.calls = 0


traffic = Traffic()
T = TypeVar("T")


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(values: Tensor) -> Tensor:
    """The element-wise sum of ``values`` over all ranks (a detached copy; ``values`` itself outside DDP)."""
    if not is_distributed():
        return values
    shared = values.detach().clone()
    traffic.add(shared)
    dist.all_reduce(shared, op=dist.ReduceOp.SUM)
    return shared


def all_reduce_mean(values: Tensor) -> Tensor:
    """The element-wise mean of ``values`` over all ranks (SUM then a division: gloo has no AVG reduction)."""
    if not is_distributed():
        return values
    return all_reduce_sum(values) / dist.get_world_size()


def mean_across_ranks(values: Tensor) -> Tensor:
    """The element-wise mean of ``values`` over all ranks (a detached copy; ``values`` itself outside DDP).

    Example:
        >>> mean_across_ranks(torch.tensor([1.0, 2.0]))  # no process group: unchanged
        tensor([1., 2.])
    """
    return all_reduce_mean(values)


def broadcast_from_first_rank(values: Tensor) -> Tensor:
    """Rank 0's ``values`` on every rank (a detached copy; ``values`` itself outside DDP)."""
    if not is_distributed():
        return values
    shared = values.detach().clone()
    traffic.add(shared)
    dist.broadcast(shared, src=0)
    return shared


def barrier() -> None:
    """Wait for every rank (nothing outside a distributed job)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(value: T) -> T:
    """Rank 0's ``value`` (any picklable object) on every rank; ``value`` itself outside a distributed job."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def backend_and_device(requested: str, local_rank: int, processes: int, cuda_devices: int) -> tuple[str, str]:
    """The process group backend and the device of one rank of a data-parallel run on one machine.

    The run's own device decides: ``cpu`` trains every rank on the CPU over gloo, also on a machine with GPUs;
    ``cuda`` (or ``auto`` where CUDA is available) gives local rank r the GPU ``cuda:r`` over NCCL, which needs one
    GPU per process. ``auto`` without CUDA is the CPU (MPS has no process group backend). A single process keeps an
    explicit ``cuda:N``.

    Example:
        >>> backend_and_device("cpu", 1, 2, cuda_devices=4), backend_and_device("auto", 1, 2, cuda_devices=4)
        (('gloo', 'cpu'), ('nccl', 'cuda:1'))

    Raises:
        ValueError: CUDA asked for (or ``auto`` found it) with fewer visible GPUs than processes, or a device a
            process group cannot train on (``mps``).
    """
    kind = requested.split(":")[0]
    if kind == "auto":
        kind = "cuda" if cuda_devices else "cpu"
    if kind == "cpu":
        return "gloo", "cpu"
    if kind != "cuda":
        raise ValueError(f"a data-parallel run trains on cpu or cuda, not {requested!r}")
    if cuda_devices < processes:
        raise ValueError(f"a data-parallel run on CUDA needs one GPU per process: {processes} processes, "
                         f"{cuda_devices} GPU(s) visible (train on device 'cpu', or use fewer processes)")
    if processes == 1 and ":" in requested:
        return "nccl", requested
    return "nccl", f"cuda:{local_rank}"


def init_from_environment(device: str = "auto") -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    The backend follows the run's ``device`` (:func:`backend_and_device`: NCCL with one GPU per local rank for
    CUDA, gloo for the CPU). Returns True when a group was joined (False for a single process).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return is_distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend, rank_device = backend_and_device(device, local_rank, processes, cuda_devices)
    if backend == "nccl":
        torch.cuda.set_device(torch.device(rank_device))
    dist.init_process_group(backend)
    return True


@contextmanager
def leaving_together() -> Iterator[None]:
    """Destroy the process group when the block ends (nothing outside a distributed job).

    When the block finished, after a barrier: no rank tears its connections down while another still works, which
    can abort that one in gloo. When it raised, at once: the other ranks may never reach a barrier.
    """
    finished = False
    try:
        yield
        finished = True
    finally:
        if is_distributed():
            if finished:
                dist.barrier()
            dist.destroy_process_group()


def average_tensors_(tensors: Sequence[Tensor]) -> None:
    """Replace every tensor by its mean over ranks, in place, with one all-reduce per dtype and device.

    The tensors are flattened into one buffer per (dtype, device), reduced, and copied back.
    """
    if not is_distributed() or not tensors:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        flat = all_reduce_mean(flat)
        offset = 0
        for tensor in group:
            tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()


def average_gradients(parameters: Iterable[nn.Parameter | Tensor]) -> None:
    """Average the ``.grad`` of ``parameters`` over ranks (those without a gradient are skipped; every rank must
    pass the same parameters with gradients in the same order)."""
    seen: set[int] = set()
    grads = []
    for p in parameters:
        if p.grad is not None and id(p) not in seen:
            seen.add(id(p))
            grads.append(p.grad)
    average_tensors_(grads)
