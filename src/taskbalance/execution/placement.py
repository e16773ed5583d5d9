"""Which worker trains on which GPU: one worker process per (GPU, slot), pinned by ``CUDA_VISIBLE_DEVICES``.

With ``devices=[0, 2]`` and ``runs_per_device=2`` the local pool runs four workers: two see only GPU 0, two only
GPU 2, so several small runs share a GPU and none oversubscribes it. On Ray each run requests
``num_gpus = nproc_per_run / runs_per_device`` (fractional when runs share a GPU) and one CPU per process, and Ray
places it on a node that has them. No scheduler of ours beyond that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuPlacement:
    """Runs placed on GPUs.

    Attributes:
        devices: the GPU indices to use (as ``nvidia-smi`` numbers them; an empty list means "no GPUs": CPU runs).
        runs_per_device: how many runs share one GPU at a time.
        processes_per_run: processes of one data-parallel run (each takes a share of the run's GPUs).
    """

    devices: tuple[int, ...]
    runs_per_device: int = 1
    processes_per_run: int = 1

    def __post_init__(self) -> None:
        if self.runs_per_device < 1 or self.processes_per_run < 1:
            raise ValueError(
                f"runs_per_device and processes_per_run must be ≥ 1, got {self.runs_per_device}, "
                f"{self.processes_per_run}"
            )
        if len(set(self.devices)) != len(self.devices) or any(d < 0 for d in self.devices):
            raise ValueError(f"devices must be distinct GPU indices ≥ 0, got {list(self.devices)}")

    def worker_slots(self) -> list[str]:
        """``CUDA_VISIBLE_DEVICES`` of every local worker: each GPU ``runs_per_device`` times.

        A data-parallel run of P processes needs P GPUs per worker: the GPUs are taken P at a time.

        Example:
            >>> GpuPlacement((0, 2), runs_per_device=2).worker_slots()
            ['0', '0', '2', '2']
            >>> GpuPlacement((0, 1, 2, 3), processes_per_run=2).worker_slots()
            ['0,1', '2,3']
        """
        p = self.processes_per_run
        if len(self.devices) % p:
            raise ValueError(f"{len(self.devices)} GPUs {list(self.devices)} do not split into runs of {p} processes")
        groups = [",".join(str(d) for d in self.devices[i : i + p]) for i in range(0, len(self.devices), p)]
        return [group for group in groups for _ in range(self.runs_per_device)]

    def ray_resources(self) -> dict[str, Any]:
        """What one run asks Ray for: its share of GPUs and one CPU per process.

        Example:
            >>> GpuPlacement((0,), runs_per_device=4).ray_resources()
            {'num_gpus': 0.25, 'num_cpus': 1}
        """
        gpus = self.processes_per_run / self.runs_per_device if self.devices else 0
        return {"num_gpus": gpus, "num_cpus": self.processes_per_run}


def visible_gpus() -> tuple[int, ...]:
    """The GPU indices this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else every GPU torch sees."""
    import torch

    if not torch.cuda.is_available():
        return ()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return tuple(int(d) for d in listed.split(",") if d.strip().isdigit())
    return tuple(range(torch.cuda.device_count()))
