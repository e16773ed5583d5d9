"""Run a sweep of configs: skip what the store already holds, run the rest, store each run as it ends.

The store is written by the driver (this process) only. A run is marked ``running`` before it is handed to a worker,
saved in one transaction when its result comes back, or marked ``failed`` with its traceback. A sweep that is
killed and started again skips every finished run and reruns the interrupted ones, which resume from their
checkpoints in ``checkpoint_dir``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from taskbalance.execution.local_pool import run_in_pool, run_in_process
from taskbalance.execution.outcome import RunFunction, RunOutcome, describe
from taskbalance.execution.placement import GpuPlacement
from taskbalance.execution.progress import RunProgress, make_progress
from taskbalance.execution.ray_tasks import run_on_ray
from taskbalance.store.run_store import RunStore, StoreError
from taskbalance.training.config import RunConfig
from taskbalance.training.result import RunResult

EXECUTORS = ("local", "ray")


class RunsFailedError(RuntimeError):
    """Some runs of a sweep failed; the others finished and are stored.

    Attributes:
        failures: run_id → the run's traceback (also stored: ``RunStore.error(run_id)``).
        configs: run_id → the failed run's config.
        results: run_id → result of every run of the sweep that did finish (what ``run_configs`` would have
            returned, less the failed runs), so a caller can go on with them.
    """

    def __init__(
        self,
        failures: Mapping[str, str],
        configs: Mapping[str, RunConfig],
        results: Mapping[str, RunResult] | None = None,
    ) -> None:
        self.failures = dict(failures)
        self.configs = dict(configs)
        self.results = dict(results or {})
        lines = [f"{len(self.failures)} run(s) failed (full tracebacks in the store: RunStore.error(run_id)):"]
        for run_id, error in self.failures.items():
            last_line = error.strip().splitlines()[-1] if error.strip() else "unknown error"
            lines.append(f"  {describe(self.configs[run_id])}: {last_line}")
        super().__init__("\n".join(lines))


def _check_picklable(run_fn: RunFunction) -> None:
    """Workers receive the run function by name: fail before anything starts when that cannot work."""
    try:
        pickle.dumps(run_fn)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise TypeError(
            f"run_fn {getattr(run_fn, '__qualname__', run_fn)!r} cannot be sent to worker processes ({error}); "
            "use a function defined at the top level of an importable module, or workers=1"
        ) from None


def run_configs(
    configs: Sequence[RunConfig],
    *,
    store: RunStore,
    executor: str = "local",
    workers: int = 2,
    address: str | None = None,
    checkpoint_dir: Path | None = None,
    progress: Callable[[str], None] | RunProgress | None = None,
    run_fn: RunFunction | None = None,
    ray_init_options: Mapping[str, Any] | None = None,
    placement: GpuPlacement | None = None,
) -> dict[str, RunResult]:
    """Run every config not yet finished in ``store`` and return run_id → result for all of them.

    Args:
        configs: the runs (duplicates are run once).
        store: where finished runs are looked up and stored.
        executor: ``"local"`` (a spawn process pool; ``workers=1`` trains in this process) or ``"ray"``.
        workers: parallel runs (the pool size, or the CPUs of a local Ray instance).
        address: a Ray cluster address (``executor="ray"`` only); None starts a local instance on 127.0.0.1.
        checkpoint_dir: per-run checkpoints, so that interrupted runs resume.
        progress: None for a bar on a terminal and lines otherwise, a callable that takes each line, or a
            :class:`~taskbalance.execution.progress.RunProgress`.
        run_fn: ``run_fn(config, *, checkpoint_dir, on_epoch=...) -> RunResult`` (default
            :func:`taskbalance.training.train`); must be importable by name for the pool and Ray.
        ray_init_options: extra keyword arguments of ``ray.init`` (e.g. ``{"_temp_dir": "/tmp/rt"}``).
        placement: runs on GPUs: the local pool gets one worker per (GPU, slot), pinned by
            ``CUDA_VISIBLE_DEVICES`` (``workers`` is then ignored); each Ray task requests its share of a GPU.

    Raises:
        RunsFailedError: after every other run ended, when some runs failed; they are marked ``failed``, and the
            error carries the results of the others.
        TypeError: ``run_fn`` cannot be pickled for worker processes (nothing was run).

    Example:
        >>> from taskbalance.execution import run_configs
        >>> from taskbalance.store import RunStore
        >>> from taskbalance.training import RunConfig
        >>> with RunStore("runs/results.sqlite") as store:  # doctest: +SKIP
        ...     results = run_configs([RunConfig(seed=s) for s in (0, 1, 2)], store=store, workers=2)
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer ≥ 1, got {workers!r}")
    if address is not None and executor != "ray":
        raise ValueError(f"address={address!r} is only used with executor='ray', got executor={executor!r}")

    if run_fn is not None and (executor == "ray" or workers > 1):
        _check_picklable(run_fn)
    unique = {config.run_id(): config for config in configs}
    results: dict[str, RunResult] = {}
    pending: list[RunConfig] = []
    for run_id, config in unique.items():
        stored = store.get(run_id)
        if stored is not None:
            results[run_id] = stored
        else:
            pending.append(config)
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)

    reporter = make_progress(progress)
    failures: dict[str, str] = {}
    if pending:
        outcomes: Iterator[RunOutcome]
        slots = placement.worker_slots() if placement is not None and placement.devices else None
        if executor == "ray":
            where = f"on Ray ({address or f'local instance, {workers} CPUs'})"
            resources = placement.ray_resources() if placement is not None else None
            outcomes = run_on_ray(pending, run_fn, checkpoint_dir, workers, address, ray_init_options, resources)
        elif slots:
            where = f"on {len(slots)} workers pinned to GPUs {sorted(set(slots))}"
            outcomes = run_in_pool(pending, run_fn, checkpoint_dir, len(slots), gpu_slots=slots)
        elif workers == 1:
            where = "in-process"
            outcomes = run_in_process(pending, run_fn, checkpoint_dir, reporter.epoch)
        else:
            where = f"on a local pool of {min(workers, len(pending))} workers"
            outcomes = run_in_pool(pending, run_fn, checkpoint_dir, workers)
        for config in pending:
            store.mark_running(config)
        reporter.start(total=len(pending), skipped=len(results), where=where)
        try:
            for outcome in outcomes:
                run_id = outcome.config.run_id()
                error = outcome.error
                if outcome.result is not None:
                    try:
                        store.save(outcome.result)
                        results[run_id] = outcome.result
                    except StoreError as store_error:  # a result that cannot be stored is a failed run
                        error = f"StoreError: {store_error}"
                if run_id not in results:
                    error = error or "unknown error"
                    store.mark_failed(outcome.config, error)
                    failures[run_id] = error
                reporter.run_finished(outcome.config, outcome.seconds, error)
        finally:
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()  # shuts the pool or Ray down also when the driver is interrupted
            reporter.close()
    ordered = {run_id: results[run_id] for run_id in unique if run_id in results}
    if failures:
        raise RunsFailedError(failures, unique, ordered)
    return ordered
