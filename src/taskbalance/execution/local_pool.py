"""The local executor: a ``spawn`` process pool, one run per task, one torch thread per run (as every executor).

Measured on 2 cores: six ~7 s trainings took 25 s against 43 s sequentially; each worker costs 3–4 CPU-s to start
Python and torch, so the pool is never larger than the number of runs. ``workers=1`` trains in the driver process
(no pool): easiest to debug, and the only mode that reports epochs as they end.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from taskbalance.execution.outcome import RunFunction, RunOutcome, execute_run
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_with_driver(driver_pid: int) -> None:
    """Ask Linux to end this worker when the driver dies, so a killed sweep leaves no trainings running."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):
        return
    if os.getppid() != driver_pid:  # the driver died before prctl took effect
        os._exit(1)


def initialize_worker(driver_pid: int, slots: Any = None) -> None:
    """Pool initializer: the worker ends with the driver (its runs' torch threads are set by ``execute_run``) and,
    with GPU placement, takes one slot and sees only that slot's GPUs (before anything initialises CUDA)."""
    _stop_with_driver(driver_pid)
    if slots is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slots.get(timeout=60)


def run_in_process(
    configs: Sequence[RunConfig],
    run_fn: RunFunction | None,
    checkpoint_dir: Path | None,
    on_epoch: Callable[[RunConfig, EpochRecord], None] | None = None,
) -> Iterator[RunOutcome]:
    """Run one config after the other in this process."""
    for config in configs:
        callback = None if on_epoch is None else (lambda record, config=config: on_epoch(config, record))
        yield execute_run(run_fn, config, checkpoint_dir, callback)


def run_in_pool(
    configs: Sequence[RunConfig],
    run_fn: RunFunction | None,
    checkpoint_dir: Path | None,
    workers: int,
    gpu_slots: Sequence[str] | None = None,
) -> Iterator[RunOutcome]:
    """Run the configs on a spawn process pool and yield each outcome as soon as it is there.

    With ``gpu_slots`` (``CUDA_VISIBLE_DEVICES`` values, see :class:`~taskbalance.execution.placement.GpuPlacement`)
    there is one worker per slot, pinned to it for its lifetime.

    A worker that dies (killed, out of memory, a crash in native code) breaks the whole pool, and the pool cannot
    say which run it was training. So no run is failed for it at once: the unfinished runs go to a fresh pool (they
    resume from their checkpoints), and a run that was unfinished in two such crashes is trained once more alone,
    in a pool of its own. Only a run whose own worker dies then is failed, with that reason; the runs that merely
    shared a pool with it finish.
    """
    remaining = list(configs)
    crashes: dict[str, int] = {}
    while remaining:
        shared = [c for c in remaining if crashes.get(c.run_id(), 0) < 2]
        alone = [c for c in remaining if crashes.get(c.run_id(), 0) >= 2]
        remaining = []
        batches = ([(shared, workers)] if shared else []) + [([config], 1) for config in alone]
        for batch, size in batches:
            lost: list[RunConfig] = []
            yield from _one_pool(batch, run_fn, checkpoint_dir, size, gpu_slots, lost)
            for config in lost:
                crashes[config.run_id()] = crashes.get(config.run_id(), 0) + 1
                if crashes[config.run_id()] > 2:  # only a run trained alone gets here
                    yield RunOutcome(config, None, "the worker process died while training this run alone (killed "
                                     "by a signal, or out of memory?), as in the two attempts before", 0.0, -1)
                else:
                    remaining.append(config)


def _one_pool(
    configs: Sequence[RunConfig],
    run_fn: RunFunction | None,
    checkpoint_dir: Path | None,
    workers: int,
    gpu_slots: Sequence[str] | None,
    lost: list[RunConfig],
) -> Iterator[RunOutcome]:
    """One pool over ``configs``: yields the outcomes; the runs a dead worker took down are appended to ``lost``."""
    context = get_context("spawn")
    slots = None
    if gpu_slots:
        workers = len(gpu_slots)
        slots = context.Queue()
        for slot in gpu_slots[: max(1, min(workers, len(configs)))]:
            slots.put(slot)
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(workers, len(configs))),
        mp_context=context,
        initializer=initialize_worker,
        initargs=(os.getpid(), slots),
    )
    finished = False
    try:
        futures: dict[Future[RunOutcome], RunConfig] = {
            pool.submit(execute_run, run_fn, config, checkpoint_dir): config for config in configs
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                config = futures[future]
                try:
                    yield future.result()
                except BrokenProcessPool:
                    lost.append(config)  # a worker died: this run may be its victim or its cause
                except Exception as error:  # e.g. the run function could not be pickled
                    yield RunOutcome(config, None, f"could not run in the pool: {error!r}", 0.0, -1)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _abandon(pool)


def _abandon(pool: ProcessPoolExecutor) -> None:
    """The driver stops early (interrupted, or failed to store a result): end the workers instead of waiting.

    The unfinished runs stay ``running`` in the store and resume from their checkpoints on the next sweep.
    """
    # ``_processes`` is private, but the executor offers no public way to stop runs that have already started.
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
