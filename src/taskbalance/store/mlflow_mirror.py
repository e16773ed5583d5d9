"""Copy finished runs from the results store to MLflow (optional extra ``taskbalance[mlflow]``).

The SQLite :class:`~taskbalance.store.RunStore` stays the source of truth; the mirror is for browsing runs in the
MLflow UI. Everything is logged from the driver with ``MlflowClient.log_batch`` (measured on this project's
machine: 8 ms per single ``log_metric`` against 0.17 s per 1000 points batched), in chunks within MLflow's batch
limits (1000 entities, 100 params per call). Each MLflow run is tagged ``taskbalance.run_id``; runs already
mirrored are skipped, so mirroring again after more runs finished only adds the new ones.

What is logged per run:

* params: every config field (``method_options.temperature``, ...; lists and tables as JSON);
* metrics at ``step = epoch``: ``val/<task>/<metric>``, ``test/<task>/<metric>``, ``train_loss/<task>``,
  ``mean_weight/<task>``, ``lr``, ``epoch_seconds``;
* metrics at ``step = optimizer step``: ``weight/<task>``, ``loss/<task>`` (the logged steps);
* metrics at step 0: ``ms_per_step``, ``peak_memory_mb``, ``wall_seconds``, ``cpu_seconds``.

Example:
    >>> from taskbalance.store import RunStore, mirror_to_mlflow
    >>> with RunStore("runs/bench/results.sqlite") as store:  # doctest: +SKIP
    ...     mirror_to_mlflow(store.results(), "sqlite:///runs/bench/mlflow.db", "multifashion")
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from taskbalance.training.result import RunResult

RUN_ID_TAG = "taskbalance.run_id"
MIRRORED_TAG = "taskbalance.mirrored"
"""Written last: a run without it was cut off while being mirrored, and is mirrored again."""
_MAX_ENTITIES = 1000  # MLflow's limit of metrics + params + tags per log_batch call
_MAX_PARAMS = 100  # ... and of params per call

T = TypeVar("T")


class MlflowUnavailableError(ImportError):
    """MLflow is not installed; the message says how to install it."""


def _import_mlflow() -> Any:
    # Never phone home from a benchmark (the tests rely on it too: they run without network).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow
        from mlflow.entities import Metric, Param, RunTag  # noqa: F401 - checks the entities are there
    except ImportError as error:
        raise MlflowUnavailableError(
            f"mirror_to_mlflow needs MLflow, which is not importable ({error}); install the extra: "
            "pip install 'taskbalance[mlflow]'"
        ) from None
    return mlflow


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def run_params(result: RunResult) -> dict[str, str]:
    """The config as flat MLflow params: option tables are spread into ``<table>.<name>`` keys."""
    params: dict[str, str] = {}
    for name, value in result.config.to_dict().items():
        if isinstance(value, dict) and value:
            params.update({f"{name}.{key}": _param_value(v) for key, v in value.items()})
        elif not isinstance(value, dict):
            params[name] = _param_value(value)
    return params


def run_metrics(result: RunResult, timestamp_ms: int) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp, step) of every point logged for a run."""
    points: list[tuple[str, float, int, int]] = []
    for record in result.epochs:
        groups = {"val": record.val, "test": record.test, "train_loss": record.train_losses,
                  "mean_weight": record.mean_weights}
        for prefix, values in groups.items():
            points.extend((f"{prefix}/{key}", float(v), timestamp_ms, record.epoch) for key, v in values.items())
        points.append(("lr", float(record.lr), timestamp_ms, record.epoch))
        points.append(("epoch_seconds", float(record.seconds), timestamp_ms, record.epoch))
    for index, step in enumerate(result.steps):
        for t, task in enumerate(result.tasks):
            if result.step_weights:
                points.append((f"weight/{task}", float(result.step_weights[index][t]), timestamp_ms, int(step)))
            if result.step_losses:
                points.append((f"loss/{task}", float(result.step_losses[index][t]), timestamp_ms, int(step)))
    for name in ("ms_per_step", "peak_memory_mb", "wall_seconds", "cpu_seconds"):
        points.append((name, float(getattr(result, name)), timestamp_ms, 0))
    points.extend((f"method/{name}", float(value), timestamp_ms, 0)
                  for name, value in result.method_diagnostics.items())
    return points


def _mirrored(client: Any, experiment_id: str) -> dict[str, str]:
    """taskbalance run_id → MLflow run id of the runs already mirrored completely into the experiment.

    A run whose mirror was interrupted (it has the run-id tag but not the completion tag written last) is deleted,
    so that this mirror logs it again in full rather than skipping it forever.
    """
    found: dict[str, str] = {}
    partial: list[str] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:
            run_id = run.data.tags.get(RUN_ID_TAG)
            if run_id is None:
                continue
            if run.data.tags.get(MIRRORED_TAG) == "true":
                found[run_id] = run.info.run_id
            else:
                partial.append(run.info.run_id)
        token = page.token
        if not token:
            break
    for mlflow_id in partial:
        client.delete_run(mlflow_id)
    return found


def _require_explicit_uri(tracking_uri: object) -> None:
    # Without one MLflow falls back to ./mlflow.db: a benchmark never writes where it was not told to.
    if not isinstance(tracking_uri, str) or not tracking_uri:
        raise ValueError(f"tracking_uri must be an explicit MLflow tracking URI, got {tracking_uri!r}")


def check_tracking_uri(tracking_uri: str) -> None:
    """Refuse a tracking URI MLflow cannot use (an unknown scheme), before a sweep rather than after it.

    Builds the client only: no request is sent, so an unreachable server is found when the mirror runs.

    Raises:
        MlflowUnavailableError: MLflow is not installed.
        ValueError: the URI is empty or MLflow refuses it (the message is MLflow's).
    """
    _require_explicit_uri(tracking_uri)
    _import_mlflow()
    from mlflow import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri)
    except Exception as error:  # MLflow raises its own exception types for unsupported stores
        raise ValueError(f"MLflow cannot use {tracking_uri!r}: {error}") from None


def mirror_to_mlflow(results: Iterable[RunResult], tracking_uri: str, experiment: str) -> dict[str, str]:
    """Log finished runs to an MLflow experiment; return taskbalance run_id → MLflow run id.

    Args:
        results: finished runs (e.g. ``store.results()``).
        tracking_uri: where MLflow stores runs, always explicit (with none MLflow writes ``./mlflow.db``), e.g.
            ``"sqlite:///runs/bench/mlflow.db"`` or an MLflow server's ``http://127.0.0.1:5000``.
        experiment: the experiment name (created when missing).
    """
    _require_explicit_uri(tracking_uri)
    _import_mlflow()
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    mirrored = _mirrored(client, experiment_id)
    for result in results:
        if result.run_id in mirrored:
            continue
        config = result.config
        options = ",".join(f"{k}={v}" for k, v in config.method_options.items())
        run = client.create_run(
            experiment_id,
            run_name=f"{config.method}{f'({options})' if options else ''} lr={config.lr:g} seed={config.seed}",
            tags={RUN_ID_TAG: result.run_id, "taskbalance.method": config.method,
                  "taskbalance.dataset": config.dataset, "taskbalance.tasks": ",".join(result.tasks)},
        )
        mlflow_id = run.info.run_id
        params = [Param(key, value) for key, value in run_params(result).items()]
        for param_chunk in _chunks(params, _MAX_PARAMS):
            client.log_batch(mlflow_id, params=list(param_chunk))
        metrics = [Metric(key, value, stamp, step) for key, value, stamp, step in
                   run_metrics(result, int(time.time() * 1000))]
        for metric_chunk in _chunks(metrics, _MAX_ENTITIES):
            client.log_batch(mlflow_id, metrics=list(metric_chunk))
        client.log_batch(mlflow_id, tags=[RunTag(MIRRORED_TAG, "true")])
        client.set_terminated(mlflow_id, "FINISHED")
        mirrored[result.run_id] = mlflow_id
    return mirrored
