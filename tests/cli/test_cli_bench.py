"""`taskbalance bench` end to end on a tiny slice of the embedded dataset (few steps, 2 seeds, in-process)."""

import csv
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskbalance.cli import main
from taskbalance.report import read_summary
from taskbalance.store import RunStore

TINY = [
    "--dataset-option", "num_train=64", "--dataset-option", "num_val=32", "--dataset-option", "num_test=32",
    "--epochs", "2", "--max-steps", "2", "--workers", "1", "--seeds", "0,1",
]


def test_tiny_protocol_end_to_end_then_rerun_skips_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["bench", *TINY, "--methods", "ew,uwso,scalarization", "--temperatures", "1,5",
            "--dataset-option", "tasks=[\"left\",\"depth\"]", "--out", str(out)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "UW-SO" in first.output and "Scalarization" in first.output
    assert "grids searched on seed 0" in first.output

    with RunStore(out / "results.sqlite") as store:
        summary = read_summary(store)
        assert summary is not None
        runs = store.results()
    # STL: 2 tasks × 2 seeds; EW: 2 seeds; UW-SO: 2 temperatures + 1; Scalarization: 9 points + 1.
    assert len(runs) == 4 + 2 + 3 + 10
    by_method = {m.method: m for m in summary.methods}
    assert set(by_method) == {"ew", "uwso", "scalarization"}
    assert len(by_method["scalarization"].grid) == 9 and by_method["uwso"].runs == 3
    assert sorted(m.rank for m in summary.methods) == [1, 2, 3]
    assert summary.metric_keys == ["left/accuracy", "depth/mae", "depth/rmse"]

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["method"] for row in rows] == [m.method for m in summary.methods]
    assert {row["label"] for row in rows} == {"EW", "UW-SO", "Scalarization"}
    assert [float(row["delta_m_mean"]) for row in rows] == [m.delta_m_mean for m in summary.methods]
    assert (out / "report.md").exists()

    with sqlite3.connect(out / "results.sqlite") as db:
        finished_before = db.execute("SELECT run_id, finished FROM runs ORDER BY run_id").fetchall()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    with sqlite3.connect(out / "results.sqlite") as db:
        finished_after = db.execute("SELECT run_id, finished FROM runs ORDER BY run_id").fetchall()
    assert finished_after == finished_before  # nothing was trained or written again


def test_bench_mirrors_every_run_to_mlflow(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the optional extra taskbalance[mlflow] is not installed")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["bench", *TINY, "--methods", "ew", "--seeds", "0", "--out", str(tmp_path / "bench"), "--mlflow-uri", uri]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "MLflow: 4 runs" in result.output  # 3 STL runs + EW
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("taskbalance-multifashion")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["taskbalance.method"] for r in runs) == ["ew"] * 4


def test_bench_runs_gradient_methods_by_name(tmp_path: Path) -> None:
    args = ["bench", *TINY, "--methods", "pcgrad,mgda_ub", "--seeds", "0", "--out", str(tmp_path / "bench"),
            "--method-option", "pcgrad.weighting=uwso",
            "--method-option", 'pcgrad.weighting_options={"temperature": 2}']
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with RunStore(tmp_path / "bench" / "results.sqlite") as store:
        summary = read_summary(store)
        options = {r.config.method: r.config.method_options for r in store.results() if r.config.method != "ew"}
    assert summary is not None
    assert {m.label for m in summary.methods} == {"PCGrad", "MGDA-UB"}
    assert options["pcgrad"] == {"weighting": "uwso", "weighting_options": {"temperature": 2}}
    assert options["mgda_ub"] == {}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("stch=1", "expected METHOD.KEY=VALUE"),
        ("uw.init=0", "method_options given for 'uw', which is not among the methods"),
        ("stch.warmup=1", "--methods stch: method 'stch' has no option 'warmup' (its hyper-parameters: mu,"),
        ("stch.warmup_epochs=-1", "--methods stch: STCH: warmup_epochs must be an int >= 0"),
    ],
)
def test_bad_method_options_fail_before_any_run(tmp_path: Path, option: str, message: str) -> None:
    args = ["bench", *TINY, "--methods", "stch", "--seeds", "0", "--out", str(tmp_path / "bench"),
            "--method-option", option]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "bench" / "results.sqlite").exists()


def test_full_searches_every_grid_point_on_every_seed(tmp_path: Path) -> None:
    args = ["bench", *TINY, "--full", "--methods", "uwso", "--temperatures", "1,5", "--lrs", "0.001",
            "--out", str(tmp_path / "bench")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "grids searched on every seed" in result.output
    with RunStore(tmp_path / "bench" / "results.sqlite") as store:
        summary = read_summary(store)
        runs = store.results()
    assert summary is not None
    (uwso,) = summary.methods
    assert uwso.runs == 4 and all(len(point.run_ids) == 2 for point in uwso.grid)  # 2 temperatures × 2 seeds
    assert len(runs) == 3 * 2 + 4  # STL: 3 tasks × 2 seeds


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "cuda"], "--device: device 'cuda' is not available here; available: cpu"),
        (["--device", "tpu"], "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
        (["--devices", "0"], "--devices places runs on GPUs, but the runs' device is cpu"),
    ],
)
def test_a_missing_device_fails_before_any_run(tmp_path: Path, flags: list[str], message: str) -> None:
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", *TINY, "--methods", "ew", "--out", str(out), *flags])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (out / "results.sqlite").exists()


def test_precision_is_part_of_the_runs_and_nproc_per_run_trains_each_run_on_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["bench", *TINY, "--seeds", "0", "--methods", "uwso", "--temperatures", "2", "--out", str(out),
            "--precision", "bf16", "--nproc-per-run", "2", "--data-on-device"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with RunStore(out / "results.sqlite") as store:
        runs = store.results()
    assert runs and all(r.config.precision == "bf16" and r.config.data_on_device for r in runs)
    assert all(r.environment["device"] == "cpu" for r in runs)


def test_eval_batch_size_reaches_every_run_of_the_plan() -> None:
    result = CliRunner().invoke(main, ["bench", "--preset", "nyuv2-segnet", "--dry-run", "--eval-batch-size", "2",
                                       "--dataset-option", "metric_averaging=batch"])
    assert result.exit_code == 0, result.output
    assert "dataset_options={'metric_averaging': 'batch'}" in result.output and "eval_batch_size=2" in result.output
    refused = CliRunner().invoke(main, ["bench", "--dry-run", "--eval-batch-size", "0"])
    assert refused.exit_code == 2 and "--eval-batch-size" in refused.output


def test_optimizer_flags_reach_every_run_of_the_plan_and_momentum_needs_sgd() -> None:
    result = CliRunner().invoke(main, ["bench", "--dry-run", "--optimizer", "sgd", "--momentum", "0.9"])
    assert result.exit_code == 0, result.output
    assert "every run: epochs=3, optimizer=sgd, momentum=0.9 (" in result.output
    refused = CliRunner().invoke(main, ["bench", "--dry-run", "--momentum", "0.9"])
    assert refused.exit_code == 2 and "momentum is SGD's (optimizer = 'sgd'); optimizer is 'adam'" in refused.output


def test_a_dry_run_accepts_valid_dataset_option_values_and_notes_batch_averaging_at_the_default_batch() -> None:
    runner = CliRunner()
    celeba = runner.invoke(main, ["bench", "--preset", "celeba-resnet18", "--dry-run", "--dataset-option",
                                  'attribute_metrics=["accuracy","f1"]'])
    assert celeba.exit_code == 0, celeba.output
    assert "dataset_options={'attribute_metrics': ['accuracy', 'f1']}" in celeba.output
    note = "note: metric_averaging=batch averages the metrics over evaluation batches of 16 images (the preset's)"
    default_batch = runner.invoke(main, ["bench", "--preset", "nyuv2-segnet", "--dry-run",
                                         "--dataset-option", "metric_averaging=batch"])
    assert default_batch.exit_code == 0 and note in default_batch.output
    chosen = runner.invoke(main, ["bench", "--preset", "nyuv2-segnet", "--dry-run", "--eval-batch-size", "2",
                                  "--dataset-option", "metric_averaging=batch"])
    assert chosen.exit_code == 0 and "note: metric_averaging" not in chosen.output
