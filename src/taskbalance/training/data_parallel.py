"""One run on several local processes: the same as ``torchrun --nproc-per-node=N -m taskbalance train``, from Python.

Used by ``taskbalance bench --nproc-per-run N``: each run of a sweep trains data-parallel on N processes, which
rendezvous through a file, not the network. The run's device picks the backend: gloo on the CPU (also on a machine
with GPUs, for ``device = "cpu"``), NCCL with one GPU per process on CUDA.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from taskbalance import distributed
from taskbalance.training.config import RunConfig
from taskbalance.training.loop import train
from taskbalance.training.result import EpochRecord, RunResult


def _rank_main(
    rank: int, processes: int, init_file: str, result_file: str, config: RunConfig, checkpoint_dir: Path | None
) -> None:
    torch.set_num_threads(1)
    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend, device = distributed.backend_and_device(config.device, rank, processes, cuda_devices)
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=processes)
    with distributed.leaving_together():
        result = train(config, checkpoint_dir=checkpoint_dir, device=device)
        if rank == 0:
            torch.save(result.to_dict(), result_file)


def train_data_parallel(
    config: RunConfig,
    *,
    processes: int = 2,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> RunResult:
    """Train ``config`` on ``processes`` local processes and return rank 0's result.

    ``on_epoch`` is not called (the epochs run in the child processes). Checkpoints in ``checkpoint_dir`` work as
    for :func:`~taskbalance.training.train`: a killed run resumes from rank 0's last checkpoint.
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be an integer ≥ 1, got {processes!r}")
    # Checked here, before any process starts, so that a run that cannot be placed fails with this message.
    distributed.backend_and_device(config.device, 0, processes,
                                   torch.cuda.device_count() if torch.cuda.is_available() else 0)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # all ranks on this machine: loopback only
    with tempfile.TemporaryDirectory(prefix="taskbalance-ddp-") as folder:
        init_file, result_file = str(Path(folder) / "init"), str(Path(folder) / "result.pt")
        mp.start_processes(
            _rank_main,
            args=(processes, init_file, result_file, config, checkpoint_dir),
            nprocs=processes,
            start_method="spawn",
        )
        return RunResult.from_dict(torch.load(result_file, weights_only=False))
