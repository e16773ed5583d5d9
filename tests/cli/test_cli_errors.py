"""Bad input to the CLI is a usage error (exit 2) naming the flag, field or file — never a traceback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskbalance.cli import main
from taskbalance.report import read_summary
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult

TINY = ["--dataset-option", "num_train=32", "--dataset-option", "num_val=16", "--dataset-option", "num_test=16",
        "--epochs", "1", "--max-steps", "1", "--workers", "1", "--seeds", "0", "--methods", "ew"]
TINY_TOML = "epochs = 1\nmax_steps_per_epoch = 1\n[dataset_options]\nnum_train = 32\nnum_val = 16\nnum_test = 16\n"


def usage_error(args: list[str], *expected: str) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, result.output
    return result.output


@pytest.mark.parametrize("temperatures", ["0", "-1", "1,0", "inf"])
def test_bench_refuses_a_temperature_that_is_not_positive(tmp_path: Path, temperatures: str) -> None:
    args = ["bench", *TINY, "--temperatures", temperatures, "--out", str(tmp_path / "b")]
    usage_error(args, "--temperatures", "finite number > 0")
    usage_error([*args, "--dry-run"], "--temperatures", "finite number > 0")  # before planning, too


def test_uwso_grid_refuses_a_temperature_that_is_not_positive() -> None:
    from taskbalance.types import SearchSpace
    from taskbalance.weighting.uwso import UWSO

    with pytest.raises(ValueError, match=r"finite and > 0 \(--temperatures\), got 0"):
        UWSO.search_grid(SearchSpace(num_tasks=2, temperatures=(1.0, 0.0)))


@pytest.mark.parametrize("lrs", ["0", "-1", "1e-3,0", "nan"])
def test_bench_refuses_a_learning_rate_that_is_not_positive(tmp_path: Path, lrs: str) -> None:
    usage_error(["bench", *TINY, "--lrs", lrs, "--out", str(tmp_path / "b")], "--lrs", "finite number > 0")
    assert not (tmp_path / "b").exists()


def test_bench_and_train_refuse_an_out_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "taken"
    file.write_text("x")
    usage_error(["bench", *TINY, "--out", str(file)], "--out", "is a file")
    config = tmp_path / "run.toml"
    config.write_text(TINY_TOML)
    usage_error(["train", str(config), "--out", str(file)], "--out", "is a file")


@pytest.mark.parametrize("command", ["bench", "report", "train"])
def test_a_corrupt_results_store_is_named_with_what_to_do(tmp_path: Path, command: str) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is no database " * 100)
    config = tmp_path / "run.toml"
    config.write_text(TINY_TOML)
    args = {"bench": ["bench", *TINY, "--out", str(out)], "report": ["report", str(out)],
            "train": ["train", str(config), "--out", str(out)]}[command]
    output = usage_error(args, "results.sqlite", "is not a readable taskbalance results store", "Move it away")
    assert "epoch 1" not in output  # train refuses the store before it trains


def test_bench_on_an_on_disk_dataset_without_data_root_names_the_flag(tmp_path: Path) -> None:
    usage_error(["bench", "--dataset", "nyuv2", "--methods", "ew", "--out", str(tmp_path / "b")],
                "--dataset nyuv2 needs --data-root")
    usage_error(["bench", "--dataset", "nyuv2", "--data-root", str(tmp_path / "none"), "--methods", "ew",
                 "--out", str(tmp_path / "b")], "missing dataset folder")
    usage_error(["bench", *TINY, "--dataset-option", "size=3", "--out", str(tmp_path / "b")],
                "--dataset-option size", "has no option 'size'")
    assert not (tmp_path / "b").exists()


def test_bench_with_an_unknown_model_fails_before_any_run(tmp_path: Path) -> None:
    usage_error(["bench", *TINY, "--model", "nope", "--out", str(tmp_path / "b")], "--model", "unknown model 'nope'")
    assert not (tmp_path / "b").exists()


def test_bench_with_an_option_the_model_does_not_take_fails_before_any_run(tmp_path: Path) -> None:
    for dry_run in ([], ["--dry-run"]):
        usage_error(["bench", *TINY, *dry_run, "--model-option", "width=3", "--out", str(tmp_path / "b")],
                    "--model-option width", "model 'multilenet' has no option 'width'", "channels_last")
    assert not (tmp_path / "b").exists()



@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("uwso", "temperature = 0", "UWSO: temperature must be finite and > 0, got 0.0"),
        ("uwso", "temperature = -2", "UWSO: temperature must be finite and > 0, got -2.0"),
        ("uwso", 'temperature = "hot"', "UWSO: temperature must be a number, got 'hot'"),
        ("scalarization", "weights = [0.5, 0.5]", "Scalarization: got 2 weights [0.5, 0.5] for 3 tasks"),
        ("scalarization", "weights = [0.5, 0.7, -0.2]", "weight of task 2 ('depth') is -0.2"),
        ("scalarization", 'weights = "abc"', "Scalarization: weights must be a list of numbers"),
        ("dwa", "temperature = 0", "DWA: temperature must be finite and > 0"),
        ("cagrad", "c = -1", "CAGrad: c must be finite and >= 0, got -1"),
        ("cagrad", 'c = "x"', "CAGrad: c must be a number, got 'x'"),
        ("stch", "mu = 0", "STCH: mu must be finite and > 0, got 0"),
        ("stch", 'mu = "x"', "STCH: mu must be a number, got 'x'"),
        ("uw", 'kinds = ["regression"]', "UW: got 1 kinds ['regression'] for 3 tasks"),
        ("uw", 'kinds = "regression"', "UW: kinds must be a list of 3"),
    ],
)
def test_train_names_a_bad_method_value(tmp_path: Path, method: str, options: str, message: str) -> None:
    config = tmp_path / "run.toml"
    config.write_text(f'method = "{method}"\n{TINY_TOML}[method_options]\n{options}\n')
    usage_error(["train", str(config)], "run.toml", "method_options:", message)


def test_train_names_an_unknown_or_bad_dataset_option(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(TINY_TOML + "size = 3\n")
    usage_error(["train", str(config)], "run.toml", "dataset_options:", "has no option 'size'")
    config.write_text(TINY_TOML.replace("num_val = 16", "num_val = 0"))
    usage_error(["train", str(config)], "dataset_options:", "num_val must be an integer ≥ 1, got 0")


def test_train_names_a_corrupt_checkpoint_under_out(tmp_path: Path) -> None:
    config_file = tmp_path / "run.toml"
    config_file.write_text(TINY_TOML)
    import tomllib

    run_id = RunConfig.from_dict(tomllib.loads(TINY_TOML)).run_id()
    checkpoint = tmp_path / "out" / "checkpoints" / f"{run_id}.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"\x80\x02 truncated")
    usage_error(["train", str(config_file), "--out", str(tmp_path / "out")], "--out", str(checkpoint),
                "delete it to restart the run")


def protocol_run(config: RunConfig, *, checkpoint_dir: Path | None = None, on_epoch=None) -> RunResult:
    """A fake training with a metric per task; UW-SO at T = 1 and every RLW run diverge."""
    if config.method == "rlw" or config.method_options.get("temperature") == 1.0:
        raise ValueError(f"training diverged: epoch 1, step 3, task 'depth', loss nan [{config.method}]")
    value = 0.5 + 0.01 * config.seed + 0.1 * config.method_options.get("temperature", 0.0)
    metrics = {f"{task}/score": value for task in config.tasks}
    record = EpochRecord(1, dict.fromkeys(config.tasks, 1.0), metrics, metrics, dict.fromkeys(config.tasks, 1.0),
                         config.lr, 0.1)
    return RunResult(config, list(config.tasks), dict.fromkeys(metrics, True), [record])


def test_a_sweep_with_failed_runs_still_writes_its_table_lists_the_failures_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskbalance.execution.outcome.default_run_function", lambda: protocol_run)
    out = tmp_path / "b"
    result = CliRunner().invoke(main, ["bench", *TINY, "--methods", "ew,uwso,rlw", "--temperatures", "1,2",
                                       "--seeds", "0,1", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "3 run(s) failed" in result.output  # UW-SO at T = 1 on seed 0, RLW on seeds 0 and 1
    assert "training diverged: epoch 1, step 3, task 'depth', loss nan [rlw]" in result.output
    assert "failed (2 runs)" in result.output and "Report:" in result.output
    with RunStore(out / "results.sqlite") as store:
        summary = read_summary(store)
        statuses = store.statuses()
    assert summary is not None
    by_method = {m.method: m for m in summary.methods}
    assert by_method["rlw"].failed and by_method["rlw"].rank == 3
    assert by_method["uwso"].selected.options == {"temperature": 2.0} and not by_method["uwso"].failed
    assert math.isfinite(by_method["ew"].delta_m_mean)
    assert sorted(statuses.values()).count("failed") == 3
    assert (out / "report.md").exists() and "RLW | failed (2 runs)" in (out / "report.md").read_text()


def test_train_reports_a_failed_run_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def diverging(config: RunConfig, **options: object) -> RunResult:
        raise ValueError("training diverged: epoch 2, step 17, task 'depth', loss inf")

    monkeypatch.setattr("taskbalance.training.train", diverging)
    config = tmp_path / "run.toml"
    config.write_text(TINY_TOML)
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "run.toml: the run failed: training diverged: epoch 2, step 17, task 'depth', loss inf" in result.output


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--seeds", "-1", "seeds must be integers ≥ 0"),
    ("--lrs", "1e-3,0.001", "lrs must not repeat a value, got 0.001"),
    ("--temperatures", "2,2.0", "temperatures must not repeat a value"),
    ("--methods", "uwso,ew,uwso", "methods must not repeat a value, got uwso"),
])
def test_bench_refuses_a_negative_seed_and_repeated_grid_values(tmp_path: Path, flag: str, value: str,
                                                                 expected: str) -> None:
    usage_error(["bench", *TINY, "--methods", "ew,uwso", flag, value, "--out", str(tmp_path / "b")], expected)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", ["report", "merge"])
def test_a_store_path_that_is_a_folder_is_a_usage_error_naming_it(tmp_path: Path, command: str) -> None:
    out = tmp_path / "b"
    (out / "results.sqlite").mkdir(parents=True)
    source = tmp_path / "source"
    RunStore(source / "results.sqlite").close()
    args = ["report", str(out)] if command == "report" else ["merge", str(out), str(source)]
    usage_error(args, "results.sqlite is a folder")


def test_train_names_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_bytes(b"# caf\xe9\nmethod = \"ew\"\n")
    usage_error(["train", str(config)], "run.toml", "cannot be read as UTF-8")


@pytest.mark.parametrize(("flags", "message"), [
    (["--address", "127.0.0.1:1"], "--address is the Ray cluster to run on: it needs --executor ray"),
    (["--executor", "ray", "--nproc-per-run", "4", "--workers", "2"], "use --workers 4 or more"),
    (["--mlflow-uri", "foo://bar"], "--mlflow-uri: MLflow cannot use 'foo://bar'"),
])
def test_bench_refuses_flags_that_cannot_work_before_any_run(tmp_path: Path, flags: list[str], message: str) -> None:
    out = tmp_path / "b"
    usage_error(["bench", *TINY, "--out", str(out), *flags], message)
    assert not (out / "results.sqlite").exists()  # refused before the store is opened


@pytest.mark.parametrize(("flags", "message"), [
    (["--dataset-option", "tasks=left"], "tasks must be a sequence of task names"),
    (["--dataset-option", "num_train=-5"], "num_train must be an integer"),
    (["--preset", "nyuv2-segnet", "--dataset-option", "tasks=left"],
     "--dataset-option tasks: dataset 'nyuv2': tasks must be a sequence of task names, got the string 'left'"),
    (["--preset", "nyuv2-segnet", "--dataset-option", 'tasks=["depth","nope"]'],
     "--dataset-option tasks: dataset 'nyuv2' has no task(s) ['nope']"),
    (["--preset", "celeba-resnet18", "--dataset-option", 'attribute_metric=["f1"]'],
     "--dataset-option attribute_metric: dataset 'celeba' has no option 'attribute_metric'; its options: root, tasks"),
    (["--preset", "celeba-resnet18", "--dataset-option", "attribute_metrics=f1,accuracy"],
     "--dataset-option: dataset 'celeba': attribute_metrics: metrics must be a list of metric names, e.g. "
     '["f1,accuracy"], got the string'),
    (["--preset", "celeba-resnet18", "--dataset-option", 'attribute_metrics=["f1","auc"]'],
     "attribute_metrics: unknown metric(s) 'auc'"),
    (["--preset", "celeba-resnet18", "--dataset-option", "image_size=0"],
     "--dataset-option: dataset 'celeba': image_size must be an integer ≥ 1, got 0"),
    (["--preset", "nyuv2-segnet", "--dataset-option", "metric_averaging=Batch"],
     "--dataset-option: dataset 'nyuv2': metric_averaging: averaging must be one of 'split', 'batch', got 'Batch'"),
])
def test_a_dry_run_checks_the_dataset_options_it_can_without_files(flags: list[str], message: str) -> None:
    usage_error(["bench", "--dry-run", *flags], message)
