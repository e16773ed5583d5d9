"""What one run produces on a worker: its result, or the text of its failure; picklable both ways.

Every run trains under the same numeric settings whatever executes it — the driver itself (``workers=1``), a pool
worker or a Ray worker: :func:`execute_run` sets torch to :data:`RUN_THREADS` intra-op thread(s) for the run and
restores the caller's setting afterwards. Results then do not depend on the executor or the number of workers (a
reduction over 1 thread and over several threads sums in different orders), and a sweep resumed with another worker
count equals an uninterrupted one.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult

RUN_THREADS = 1
"""torch intra-op threads of every run (one run per CPU: parallel runs, not parallel kernels, fill a machine)."""

RunFunction = Callable[..., RunResult]
"""``run_fn(config, *, checkpoint_dir=..., on_epoch=...) -> RunResult``, like :func:`taskbalance.training.train`."""


@dataclass
class RunOutcome:
    """A run that ended: ``result`` when it finished, ``error`` (a traceback) when it raised.

    Exceptions travel as text so that an exception class the driver cannot unpickle still reaches it.
    """

    config: RunConfig
    result: RunResult | None
    error: str | None
    seconds: float
    worker_pid: int


def default_run_function() -> RunFunction:
    from taskbalance.training import train  # heavy (torch, datasets): only where a run really trains

    return train


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block, the previous count restored after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def execute_run(
    run_fn: RunFunction | None,
    config: RunConfig,
    checkpoint_dir: Path | None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> RunOutcome:
    """Run one config with :data:`RUN_THREADS` torch threads and never raise: the entry point of every executor."""
    started = time.perf_counter()
    try:
        function = run_fn if run_fn is not None else default_run_function()
        options: dict[str, Any] = {"checkpoint_dir": checkpoint_dir}
        if on_epoch is not None:
            options["on_epoch"] = on_epoch
        with torch_threads(RUN_THREADS):
            result = function(config, **options)
        if not isinstance(result, RunResult):
            raise TypeError(f"the run function returned {type(result).__name__}, expected a RunResult")
        if result.run_id != config.run_id():
            raise ValueError(f"the run function returned the result of run {result.run_id} for run {config.run_id()}")
    except Exception:
        return RunOutcome(config, None, traceback.format_exc(), time.perf_counter() - started, os.getpid())
    return RunOutcome(config, result, None, time.perf_counter() - started, os.getpid())


def describe(config: RunConfig) -> str:
    """A short human-readable name of a run for progress lines and errors."""
    options = ", ".join(f"{k}={v}" for k, v in config.method_options.items())
    tasks = f" tasks={','.join(config.tasks)}" if config.tasks else ""
    method = f"{config.method}({options})" if options else config.method
    return f"{method} lr={config.lr:g} seed={config.seed}{tasks} [{config.run_id()}]"
