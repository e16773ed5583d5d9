"""Which process-group backend and device each rank of a data-parallel run gets: decided by the run's device."""

from __future__ import annotations

import re

import pytest

from taskbalance.distributed import backend_and_device
from taskbalance.training.config import RunConfig
from taskbalance.training.data_parallel import train_data_parallel


def test_a_cpu_run_stays_on_the_cpu_over_gloo_also_where_there_are_gpus() -> None:
    assert [backend_and_device("cpu", rank, 2, cuda_devices=8) for rank in (0, 1)] == [("gloo", "cpu")] * 2


@pytest.mark.parametrize("requested", ["cuda", "auto", "cuda:3"])
def test_cuda_gives_each_local_rank_its_own_gpu_over_nccl(requested: str) -> None:
    assert [backend_and_device(requested, rank, 3, cuda_devices=4) for rank in range(3)] == [
        ("nccl", "cuda:0"), ("nccl", "cuda:1"), ("nccl", "cuda:2")]


def test_auto_without_cuda_is_the_cpu_and_one_process_keeps_its_gpu_index() -> None:
    assert backend_and_device("auto", 0, 2, cuda_devices=0) == ("gloo", "cpu")
    assert backend_and_device("cuda:2", 0, 1, cuda_devices=4) == ("nccl", "cuda:2")


@pytest.mark.parametrize(("requested", "gpus", "message"), [
    ("cuda", 1, "needs one GPU per process: 2 processes, 1 GPU(s) visible"),
    ("auto", 1, "needs one GPU per process"),
    ("mps", 0, "trains on cpu or cuda, not 'mps'"),
])
def test_a_run_that_cannot_be_placed_is_refused_with_the_reason(requested: str, gpus: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        backend_and_device(requested, 0, 2, cuda_devices=gpus)


def test_train_data_parallel_refuses_cuda_here_before_starting_a_process() -> None:
    # This machine has no GPU: the check runs before any rank is spawned (which would take seconds).
    with pytest.raises(ValueError, match="0 GPU\\(s\\) visible"):
        train_data_parallel(RunConfig(device="cuda"), processes=2)
