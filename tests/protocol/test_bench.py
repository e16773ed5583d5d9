"""The protocol's selection and Δm arithmetic on numbers worked out by hand (runs are faked, no training)."""

import math

import pytest

from taskbalance.protocol.bench import BenchSpec, run_bench
from taskbalance.protocol.selection import select_epoch
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult

DIRECTIONS = {"a/acc": True, "b/mae": False}


def _record(epoch: int, val: dict[str, float], test: dict[str, float]) -> EpochRecord:
    return EpochRecord(epoch, {}, val, test, {}, 1e-3, 1.0)


def fake_result(config: RunConfig) -> RunResult:
    """Synthetic metrics chosen so that every selection below can be checked by hand."""
    if config.tasks == ["a"]:
        epochs = [_record(1, {"a/acc": 0.7}, {"a/acc": 0.75}), _record(2, {"a/acc": 0.8}, {"a/acc": 0.8})]
    elif config.tasks == ["b"]:
        epochs = [_record(1, {"b/mae": 0.2}, {"b/mae": 0.2}), _record(2, {"b/mae": 0.1}, {"b/mae": 0.1})]
    elif config.method == "ew":
        # Validation Δm vs (0.8, 0.1): epoch 1 → (0 + 20)/2 = 10, epoch 2 → (10 + 0)/2 = 5: epoch 2 is selected.
        test = {0: {"a/acc": 0.84, "b/mae": 0.1}, 1: {"a/acc": 0.8, "b/mae": 0.11}}[config.seed]
        epochs = [
            _record(1, {"a/acc": 0.8, "b/mae": 0.12}, {"a/acc": 0.0, "b/mae": 9.0}),
            _record(2, {"a/acc": 0.72, "b/mae": 0.1}, test),
        ]
    else:  # uwso: T = 2 matches the baseline (Δm 0), T = 1 is worse (Δm 56.25)
        good = config.method_options["temperature"] == 2.0
        val = {"a/acc": 0.8, "b/mae": 0.1} if good else {"a/acc": 0.7, "b/mae": 0.2}
        test = {"a/acc": 0.8 + 0.08 * config.seed, "b/mae": 0.1}
        epochs = [_record(1, val, test)]
    directions = {k: v for k, v in DIRECTIONS.items() if k.split("/")[0] in config.tasks}
    return RunResult(config, list(config.tasks), directions, epochs, cpu_seconds=2.0)


class FakeExecutor:
    def __init__(self) -> None:
        self.calls: list[list[RunConfig]] = []

    def __call__(self, configs: list[RunConfig]) -> dict[str, RunResult]:
        self.calls.append(list(configs))
        return {c.run_id(): fake_result(c) for c in configs}


def test_one_seed_search_selects_by_validation_and_reports_test_delta_m() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["ew", "uwso"], seeds=[0, 1], temperatures=[1.0, 2.0],
                     run=RunConfig(epochs=2))
    executor = FakeExecutor()
    summary = run_bench(spec, executor)

    assert summary.baseline_val == {"a/acc": 0.8, "b/mae": 0.1}
    assert summary.baseline_test == {"a/acc": 0.8, "b/mae": 0.1}
    by_method = {m.method: m for m in summary.methods}

    ew = by_method["ew"]
    # seed 0: a: −(0.84−0.8)/0.8·100 = −5, b: 0 → −2.5; seed 1: a: 0, b: (0.11−0.1)/0.1·100 = 10 → 5.
    assert ew.delta_m_per_seed == pytest.approx([-2.5, 5.0])
    assert ew.delta_m_mean == pytest.approx(1.25)
    assert ew.delta_m_std == pytest.approx(3.75)
    assert ew.runs == 2 and ew.cpu_seconds == pytest.approx(4.0)
    assert ew.delta_m_seeds == [0, 1] and ew.gpu_seconds == 0.0  # fake runs record no device: the CPU

    uwso = by_method["uwso"]
    assert uwso.selected.options == {"temperature": 2.0}
    assert uwso.selected.val_delta_m == pytest.approx(0.0)
    assert {g.options["temperature"]: g.val_delta_m for g in uwso.grid} == pytest.approx({1.0: 56.25, 2.0: 0.0})
    # seed 0: 0; seed 1: a: −(0.88−0.8)/0.8·100 = −10 → −5.
    assert uwso.delta_m_per_seed == pytest.approx([0.0, -5.0])
    assert uwso.runs == 3  # two temperatures on seed 0, the selected one on seed 1
    assert [m.method for m in summary.methods] == ["uwso", "ew"] and [m.rank for m in summary.methods] == [1, 2]

    # Phase 1: 2 tasks × 2 seeds STL + EW on both seeds + 2 temperatures on seed 0; phase 2: T = 2 on seed 1.
    assert [len(call) for call in executor.calls] == [8, 1]
    (phase2,) = executor.calls[1]
    assert (phase2.method, phase2.seed, phase2.method_options) == ("uwso", 1, {"temperature": 2.0})
    assert "seed 0" in summary.notes[0]


def test_all_seeds_search_averages_validation_over_seeds() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["uwso"], seeds=[0, 1], temperatures=[1.0, 2.0],
                     search="all_seeds")
    executor = FakeExecutor()
    summary = run_bench(spec, executor)
    assert len(executor.calls) == 1 and len(executor.calls[0]) == 4 + 4
    assert summary.methods[0].runs == 4


def test_scalarization_grid_has_the_paper_size() -> None:
    spec = BenchSpec(task_names=["a", "b", "c"], methods=["scalarization"], seeds=[0])
    assert len(spec.grid("scalarization")) == 36
    assert all(math.isclose(sum(p["weights"]), 1.0) for p in spec.grid("scalarization"))


def test_spec_rejects_unknown_methods_and_single_tasks() -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        BenchSpec(task_names=["a", "b"], methods=["nope"])
    with pytest.raises(ValueError, match="at least two tasks"):
        BenchSpec(task_names=["a"])


def test_stl_epoch_selection_is_self_referenced() -> None:
    records = [_record(1, {"b/mae": 0.3}, {}), _record(2, {"b/mae": 0.1}, {}), _record(3, {"b/mae": 0.2}, {})]
    assert select_epoch(records, None, {"b/mae": False}) == 1


def test_a_diverged_epoch_is_never_selected_over_a_finite_one() -> None:
    nan = float("nan")
    records = [_record(1, {"b/mae": nan}, {}), _record(2, {"b/mae": 0.5}, {}), _record(3, {"b/mae": nan}, {})]
    assert select_epoch(records, {"b/mae": 0.1}, {"b/mae": False}) == 1


class FailingExecutor(FakeExecutor):
    """Runs like FakeExecutor but leaves out (= fails) every run ``fails(config)`` picks."""

    def __init__(self, fails) -> None:
        super().__init__()
        self.fails = fails

    def __call__(self, configs: list[RunConfig]) -> dict[str, RunResult]:
        return {rid: r for rid, r in super().__call__(configs).items() if not self.fails(r.config)}


def test_failed_runs_are_left_out_and_a_method_without_results_is_listed_as_failed() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["ew", "uwso"], seeds=[0, 1], temperatures=[1.0, 2.0],
                     run=RunConfig(epochs=2))
    # Every EW run fails, and UW-SO's T = 2 fails on seed 1 (phase 2): UW-SO keeps its seed-0 result.
    executor = FailingExecutor(
        lambda c: (c.method == "ew" and len(c.tasks) == 2) or (c.method == "uwso" and c.seed == 1)
    )
    summary = run_bench(spec, executor)
    uwso, ew = summary.methods
    assert (uwso.method, uwso.rank, uwso.failed) == ("uwso", 1, False)
    assert uwso.delta_m_per_seed == pytest.approx([0.0]) and len(uwso.failed_run_ids) == 1
    assert (ew.method, ew.rank, ew.failed) == ("ew", 2, True)
    assert math.isnan(ew.delta_m_mean) and ew.delta_m_per_seed == [] and ew.metrics_mean == {}
    assert len(ew.failed_run_ids) == 2 and ew.seed_run_ids == []
    assert any("3 run(s) failed" in note for note in summary.notes)
    assert [len(call) for call in executor.calls] == [8, 1]  # EW has no phase 2: none of its runs finished


def test_a_task_whose_stl_runs_all_failed_is_left_out_of_delta_m_with_the_reason() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["ew"], seeds=[0, 1], run=RunConfig(epochs=2))
    summary = run_bench(spec, FailingExecutor(lambda c: c.tasks == ["b"]))
    assert summary.metric_keys == ["a/acc", "b/mae"] and summary.baseline_val == {"a/acc": 0.8}
    assert summary.excluded_metrics == {"b/mae": "no STL baseline: every single-task run of its task failed"}
    (ew,) = summary.methods
    # Validation Δm over a/acc alone: epoch 1 → 0, epoch 2 → 10: epoch 1 is selected; its test a/acc 0.0 → +100.
    assert ew.delta_m_per_seed == pytest.approx([100.0, 100.0])
    assert ew.metrics_mean["b/mae"] == pytest.approx(9.0)  # the metric is still reported


def test_a_zero_baseline_metric_is_left_out_of_delta_m_and_the_report_is_still_written() -> None:
    def zero_accuracy(config: RunConfig) -> RunResult:
        result = fake_result(config)
        if config.tasks == ["a"]:  # a single-task model that scores 0 on a small split
            for epoch in result.epochs:
                epoch.val["a/acc"] = epoch.test["a/acc"] = 0.0
        return result

    spec = BenchSpec(task_names=["a", "b"], methods=["ew", "uwso"], seeds=[0, 1], temperatures=[1.0, 2.0],
                     run=RunConfig(epochs=2))
    summary = run_bench(spec, lambda configs: {c.run_id(): zero_accuracy(c) for c in configs})
    assert summary.baseline_val == {"a/acc": 0.0, "b/mae": 0.1}
    assert list(summary.excluded_metrics) == ["a/acc"]
    assert "baseline is 0.0" in summary.excluded_metrics["a/acc"]
    assert any(note.startswith("Δm leaves out a/acc: the STL validation baseline") for note in summary.notes)
    by_method = {m.method: m for m in summary.methods}
    # Δm over b/mae alone: EW seed 0: 0, seed 1: (0.11 − 0.1)/0.1·100 = 10.
    assert by_method["ew"].delta_m_per_seed == pytest.approx([0.0, 10.0])
    assert all(math.isfinite(m.delta_m_mean) for m in summary.methods)


def test_epoch_selection_leaves_out_a_reference_of_zero() -> None:
    records = [_record(1, {"a/acc": 0.0, "b/mae": 0.3}, {}), _record(2, {"a/acc": 0.5, "b/mae": 0.1}, {})]
    assert select_epoch(records, None, DIRECTIONS) == 1
    assert select_epoch(records[:1] * 2, {"a/acc": 0.0}, DIRECTIONS) == 1  # nothing to compare: the last epoch


def test_an_stl_metric_that_is_zero_in_the_first_epoch_is_measured_from_its_first_nonzero_epoch() -> None:
    # An F1 of 0 until something is predicted positive: epoch 3 (F1 0.6) beats the last one (0.4).
    records = [_record(i + 1, {"a/f1": value}, {}) for i, value in enumerate([0.0, 0.2, 0.6, 0.4])]
    assert select_epoch(records, None, {"a/f1": True}) == 2  # not the last epoch: F1 has a reference (0.2)
    # Two metrics: b/mae keeps its first-epoch reference, a/f1 takes epoch 2's; both count.
    records = [_record(1, {"a/f1": 0.0, "b/mae": 0.30}, {}), _record(2, {"a/f1": 0.5, "b/mae": 0.20}, {}),
               _record(3, {"a/f1": 0.9, "b/mae": 0.21}, {})]
    directions = {"a/f1": True, "b/mae": False}
    # Epoch 2: (−0 + (0.2 − 0.3)/0.3)/2 = −1/6 against epoch 3: (−(0.9 − 0.5)/0.5 + (0.21 − 0.3)/0.3)/2 = −0.55.
    assert select_epoch(records, None, directions) == 2


def test_diagnostics_notes_name_each_count_above_zero_and_nothing_else() -> None:
    from dataclasses import replace

    from taskbalance.protocol.bench import diagnostics_notes

    base = RunResult(RunConfig(method="nashmtl"), ["a"], {}, [])
    runs = [replace(base, method_diagnostics={"solve_failures": v}) for v in (0.0, 2.0, 5.0)]
    assert diagnostics_notes(runs) == [
        "nashmtl: solve_failures 7 over 2 of 3 run(s) (Method.diagnostics; per run in the store)"]
    assert diagnostics_notes([*runs[:1], RunResult(RunConfig(method="ew"), ["a"], {}, [])]) == []


def test_the_notes_name_the_run_template_without_the_fields_outside_a_runs_identity() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["ew"], seeds=[0],
                     run=RunConfig(epochs=2, optimizer="sgd", device="cpu", data_on_device=True))
    summary = run_bench(spec, FailingExecutor(lambda c: False))
    assert "every run: epochs=2, optimizer=sgd (other fields: RunConfig defaults)" in summary.notes


def test_a_method_whose_grid_failed_counts_only_the_runs_it_started() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["ew", "uwso"], seeds=[0, 1], temperatures=[1.0, 2.0],
                     run=RunConfig(epochs=2))
    summary = run_bench(spec, FailingExecutor(lambda c: c.method == "uwso"))
    uwso = next(m for m in summary.methods if m.method == "uwso")
    # Its grid (T = 1, 2 on seed 0) failed, so phase 2 never started seed 1 of a selected point.
    assert uwso.failed and uwso.runs == 2 and len(uwso.failed_run_ids) == 2
    assert any(note.startswith("2 run(s) failed") for note in summary.notes)


def test_a_benchmark_without_any_usable_baseline_still_gives_its_summary() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["ew", "uwso"], seeds=[0, 1], temperatures=[1.0],
                     run=RunConfig(epochs=2))
    summary = run_bench(spec, FailingExecutor(lambda c: len(c.tasks) == 1))  # every STL run fails
    assert set(summary.excluded_metrics) == {"a/acc", "b/mae"}
    assert all(math.isnan(m.delta_m_mean) and math.isnan(m.delta_m_std) for m in summary.methods)


def test_a_method_counts_the_wall_time_of_its_gpu_runs_as_gpu_seconds() -> None:
    class GpuExecutor(FakeExecutor):
        def __call__(self, configs: list[RunConfig]) -> dict[str, RunResult]:
            results = super().__call__(configs)
            for result in results.values():
                result.wall_seconds = 5.0
                if result.config.method == "uwso":
                    result.environment = {"device": "cuda:0"}
            return results

    spec = BenchSpec(task_names=["a", "b"], methods=["ew", "uwso"], seeds=[0, 1], temperatures=[1.0, 2.0],
                     run=RunConfig(epochs=2))
    by_method = {m.method: m for m in run_bench(spec, GpuExecutor()).methods}
    assert by_method["uwso"].gpu_seconds == pytest.approx(15.0)  # 3 runs × 5 s
    assert by_method["ew"].gpu_seconds == 0.0 and by_method["ew"].cpu_seconds == pytest.approx(4.0)
