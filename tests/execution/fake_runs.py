"""Run functions for the execution tests: no training, deterministic results, a marker line per invocation.

They live in their own module so that spawn workers and Ray workers can import them by name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult


def fake_result(config: RunConfig) -> RunResult:
    """What a run of ``config`` returns: a pure function of the config, so reruns can be compared exactly."""
    base = 0.5 + 0.01 * config.seed + 0.001 * config.lr
    records = [
        EpochRecord(e, {"a": 1.0 / e, "b": 0.5 / e}, {"a/acc": base + 0.05 * e, "b/mae": 0.2 / e},
                    {"a/acc": base + 0.04 * e, "b/mae": 0.21 / e}, {"a": 0.6, "b": 0.4}, config.lr, 0.1)
        for e in range(1, config.epochs + 1)
    ]
    steps = list(range(1, 2 * config.epochs + 1))
    return RunResult(config, ["a", "b"], {"a/acc": True, "b/mae": False}, records, steps,
                     [[0.6, 0.4] for _ in steps], [[1.0 / s, 0.5 / s] for s in steps], 5.0, 100.0, 1.0, 0.9)


def sleepy_run(config: RunConfig, *, checkpoint_dir: Path | None = None, on_epoch=None) -> RunResult:
    """Sleep per epoch, checkpoint after each epoch like ``train``, resume from the checkpoint, log invocations.

    ``dataset_options``: ``marker_dir`` (one line per invocation: start epoch, pid, torch threads), ``sleep``
    (seconds per epoch), ``fail_flag`` (a file: while it exists, the run raises in its second epoch),
    ``thread_sensitive`` (the last epoch's test ``a/acc`` grows by the torch thread count of the invocation that
    finished it, as a real result depends on the order of its reductions).
    """
    import torch

    options = config.dataset_options
    run_id = config.run_id()
    checkpoint = Path(checkpoint_dir) / f"{run_id}.pt" if checkpoint_dir is not None else None
    first_epoch = int(checkpoint.read_text()) + 1 if checkpoint is not None and checkpoint.exists() else 1
    with open(Path(options["marker_dir"]) / f"{run_id}.log", "a") as marker:
        marker.write(f"{first_epoch} {os.getpid()} {torch.get_num_threads()}\n")
    result = fake_result(config)
    for epoch in range(first_epoch, config.epochs + 1):
        time.sleep(options.get("sleep", 0.0))
        if epoch == 2 and "fail_flag" in options and Path(options["fail_flag"]).exists():
            raise ValueError(f"loss of task 'b' is nan in epoch {epoch}")
        if checkpoint is not None:
            partial = checkpoint.with_suffix(".tmp")
            partial.write_text(str(epoch))
            os.replace(partial, checkpoint)
        if on_epoch is not None:
            on_epoch(result.epochs[epoch - 1])
    if checkpoint is not None:
        checkpoint.unlink()
    if options.get("thread_sensitive"):
        result.epochs[-1].test["a/acc"] += torch.get_num_threads()
    return result


def threads_seen(config: RunConfig, *, checkpoint_dir: Path | None = None, on_epoch=None) -> RunResult:
    """``fake_result`` with the torch thread count the run saw as its ``ms_per_step``."""
    import torch

    result = fake_result(config)
    result.ms_per_step = float(torch.get_num_threads())
    return result


def invocations(marker_dir: Path, run_id: str) -> list[tuple[int, int, int]]:
    """(first epoch, pid, torch threads) of every invocation of a run."""
    path = marker_dir / f"{run_id}.log"
    if not path.exists():
        return []
    return [tuple(int(v) for v in line.split()) for line in path.read_text().splitlines()]


def visible_gpus_seen(config: RunConfig, *, checkpoint_dir: Path | None = None, on_epoch=None) -> RunResult:
    """``fake_result`` recording the worker's ``CUDA_VISIBLE_DEVICES`` and pid in its environment.

    Each run leaves a marker in ``$TASKBALANCE_TEST_MARKERS`` and waits (≤ 60 s) until ``$TASKBALANCE_TEST_RUNS``
    markers exist, so that that many runs are in flight at once: each on its own worker.
    """
    folder = Path(os.environ["TASKBALANCE_TEST_MARKERS"])
    (folder / f"{config.run_id()}").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < int(os.environ["TASKBALANCE_TEST_RUNS"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    result = fake_result(config)
    result.environment = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}
    return result


def crashing_run(config: RunConfig, *, checkpoint_dir: Path | None = None, on_epoch=None) -> RunResult:
    """Kill the worker process outright (as the kernel's OOM killer would) for seed 1; others sleep, then finish."""
    if config.seed == 1:
        os._exit(9)
    time.sleep(config.dataset_options.get("sleep", 0.0))
    return fake_result(config)
