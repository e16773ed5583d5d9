"""The Ray executor (optional extra ``taskbalance[ray]``): plain Ray tasks, one run per task, no scheduler of ours.

Without ``address`` a local Ray instance is started with ``num_cpus=workers``, no dashboard, bound to 127.0.0.1
(Ray otherwise binds to the machine's external interface) and with usage statistics off; it is shut down at the
end. With ``address`` (e.g. ``"ray://head:10001"`` or ``"auto"``) the runs go to that cluster, whose workers must
have taskbalance installed and, when ``checkpoint_dir`` is given, see that folder at the same path. A Ray instance
the caller has already started (``ray.is_initialized()``) is used as it is and left running.

Each task asks Ray for one CPU and trains with one torch thread (:func:`~taskbalance.execution.outcome.execute_run`).
Measured here with ray 2.60: ``ray.init(num_cpus=2, include_dashboard=False)`` starts in about 5 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from taskbalance.execution.outcome import RunFunction, RunOutcome, execute_run
from taskbalance.training.config import RunConfig


class RayUnavailableError(ImportError):
    """Ray is not installed; the message says how to install it."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise RayUnavailableError(
            f"executor='ray' needs Ray, which is not importable ({error}); install the extra: "
            "pip install 'taskbalance[ray]' (or use executor='local')"
        ) from None
    return ray




def task_resources(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``ray.remote`` resources of one run: one CPU unless placement asks for more (and GPUs).

    Example:
        >>> task_resources({"num_gpus": 0.5, "num_cpus": 1})
        {'num_cpus': 1, 'num_gpus': 0.5}
    """
    requested = {"num_cpus": 1, **(resources or {})}
    if not requested.get("num_gpus"):
        requested.pop("num_gpus", None)
    return requested


def run_on_ray(
    configs: Sequence[RunConfig],
    run_fn: RunFunction | None,
    checkpoint_dir: Path | None,
    workers: int,
    address: str | None,
    init_options: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> Iterator[RunOutcome]:
    """Submit every config as a Ray task and yield each outcome as it ends (``ray.wait``).

    ``resources`` is what each task requests (default one CPU; with GPU placement e.g.
    ``{"num_gpus": 0.25, "num_cpus": 1}``).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {"log_to_driver": False, **(init_options or {})}
        if address is None:
            options.setdefault("num_cpus", workers)
            options.setdefault("include_dashboard", False)
            options.setdefault("_node_ip_address", "127.0.0.1")
        ray.init(address=address, **options)
    try:
        # max_retries=0: a run that crashed its worker is reported as failed, not silently trained again.
        task = ray.remote(max_retries=0, **task_resources(resources))(execute_run)
        references = {task.remote(run_fn, config, checkpoint_dir): config for config in configs}
        pending = list(references)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for reference in done:
                config = references[reference]
                try:
                    yield ray.get(reference)
                except Exception as error:  # the worker died, or the task could not be scheduled
                    yield RunOutcome(config, None, f"Ray task failed: {error!r}", 0.0, -1)
    finally:
        if started_here:
            ray.shutdown()
