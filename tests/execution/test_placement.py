"""GPU placement without GPUs: which worker sees which GPU, and what each Ray run requests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fake_runs import visible_gpus_seen

from taskbalance.execution import run_configs
from taskbalance.execution.placement import GpuPlacement
from taskbalance.execution.ray_tasks import task_resources
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig


def test_each_gpu_gets_runs_per_device_workers() -> None:
    assert GpuPlacement((0, 2), runs_per_device=2).worker_slots() == ["0", "0", "2", "2"]
    assert GpuPlacement((1,), runs_per_device=4).worker_slots() == ["1"] * 4
    assert GpuPlacement((0, 1, 2, 3), runs_per_device=1, processes_per_run=2).worker_slots() == ["0,1", "2,3"]
    with pytest.raises(ValueError, match=r"3 GPUs \[0, 1, 2\] do not split into runs of 2 processes"):
        GpuPlacement((0, 1, 2), processes_per_run=2).worker_slots()
    with pytest.raises(ValueError, match="distinct GPU indices"):
        GpuPlacement((0, 0))


def test_ray_runs_request_their_share_of_a_gpu() -> None:
    assert GpuPlacement((0,), runs_per_device=4).ray_resources() == {"num_gpus": 0.25, "num_cpus": 1}
    assert GpuPlacement((0, 1), processes_per_run=2).ray_resources() == {"num_gpus": 2.0, "num_cpus": 2}
    assert GpuPlacement((), runs_per_device=1).ray_resources() == {"num_gpus": 0, "num_cpus": 1}
    assert task_resources(GpuPlacement((), runs_per_device=1).ray_resources()) == {"num_cpus": 1}
    assert task_resources(None) == {"num_cpus": 1}


def test_the_local_pool_pins_every_worker_to_its_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("TASKBALANCE_TEST_MARKERS", str(markers))
    monkeypatch.setenv("TASKBALANCE_TEST_RUNS", "4")
    runs = [RunConfig(seed=seed, epochs=1) for seed in range(4)]
    with RunStore(tmp_path / "r.sqlite") as store:
        results = run_configs(runs, store=store, placement=GpuPlacement((0, 2), runs_per_device=2),
                              run_fn=visible_gpus_seen, progress=lambda _: None)
    seen = {(r.environment["pid"], r.environment["visible"]) for r in results.values()}
    pids = {pid for pid, _ in seen}
    assert len(pids) == len(seen) == 4  # four workers, each always with the same GPU
    assert Counter(visible for _, visible in seen) == {"0": 2, "2": 2}
