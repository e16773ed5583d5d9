"""The MLflow mirror against a SQLite tracking URI in a temporary folder (runs when the mlflow extra is there)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_run_store import make_result

from taskbalance.store.mlflow_mirror import MlflowUnavailableError, mirror_to_mlflow, run_metrics, run_params


def test_params_and_metrics_are_flattened_as_documented() -> None:
    result = make_result("uwso", epochs=2)
    params = run_params(result)
    assert params["method"] == "uwso" and params["method_options.temperature"] == "2.0"
    assert params["tasks"] == '["right", "left", "dense"]' and params["lr"] == "0.001"
    assert "dataset_options" not in params  # empty tables add nothing
    points = run_metrics(result, 7)
    # Per epoch: 3 val + 3 test + 3 losses + 3 weights + lr + seconds = 14; 4 steps × 3 tasks × (weight, loss) = 24;
    # 4 run-level values.
    assert len(points) == 2 * 14 + 24 + 4
    assert ("val/left/acc", 0.6, 7, 2) in [(k, round(v, 12), t, s) for k, v, t, s in points]
    assert ("weight/dense", pytest.approx(1 - 0.3 * 2.5), 7, 8) in points
    assert ("cpu_seconds", 6.25, 7, 0) in points


def test_mirror_logs_every_point_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="the optional extra taskbalance[mlflow] is not installed")
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # nothing may be written to the working folder but the given database
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = make_result("uwso", seed=0), make_result("ew", seed=1, epochs=3)
    ids = mirror_to_mlflow([first], uri, "bench")
    ids = mirror_to_mlflow([first, second], uri, "bench")  # the first run is already there: skipped
    assert set(ids) == {first.run_id, second.run_id}

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("bench")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    run = client.get_run(ids[second.run_id])
    assert run.info.status == "FINISHED" and run.data.tags["taskbalance.run_id"] == second.run_id
    assert run.data.params["seed"] == "1" and run.data.params["epochs"] == "3"
    history = sorted((m.step, m.value) for m in client.get_metric_history(ids[second.run_id], "test/dense/l1"))
    assert [step for step, _ in history] == [1, 2, 3]
    assert [value for _, value in history] == pytest.approx([0.31, 0.155, 0.31 / 3])
    weights = sorted((m.step, m.value) for m in client.get_metric_history(ids[first.run_id], "weight/right"))
    assert [step for step, _ in weights] == [1, 2, 4, 8]
    assert [value for _, value in weights] == pytest.approx([0.1, 0.15, 0.2, 0.25])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_missing_mlflow_and_missing_uri_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="explicit MLflow tracking URI, got ''"):
        mirror_to_mlflow([], "", "bench")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MlflowUnavailableError, match=r"pip install 'taskbalance\[mlflow\]'"):
        mirror_to_mlflow([], "sqlite:///x.db", "bench")


def test_a_mirror_cut_off_midway_is_completed_by_the_next_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="the optional extra taskbalance[mlflow] is not installed")
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = make_result("uwso", seed=0)
    calls = {"n": 0}
    original = MlflowClient.log_batch

    def cut_off(self: MlflowClient, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the params are logged, the metrics are not
            raise KeyboardInterrupt
        original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", cut_off)
    with pytest.raises(KeyboardInterrupt):
        mirror_to_mlflow([result], uri, "bench")
    monkeypatch.setattr(MlflowClient, "log_batch", original)
    ids = mirror_to_mlflow([result], uri, "bench")

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    assert [run.info.run_id for run in runs] == [ids[result.run_id]]  # the partial run is gone, one full copy left
    run = client.get_run(ids[result.run_id])
    assert run.info.status == "FINISHED" and "test/dense/l1" in run.data.metrics
