"""scripts/reproduction.py at a tiny scale: every part runs into one store, resumes, snapshots, and the report
carries each claim's verdict, computed from the summaries in the store; plus the verdict rules on made-up numbers."""

from __future__ import annotations

import importlib.util
import math
import platform
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from taskbalance.cli import main as cli
from taskbalance.protocol.bench import stl_configs
from taskbalance.protocol.delta_m import delta_m
from taskbalance.protocol.selection import score
from taskbalance.protocol.summary import BenchSummary, GridPoint, MethodSummary
from taskbalance.report import read_summary
from taskbalance.store import RunStore

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TINY = ["--epochs", "1", "--lrs", "1e-3,1e-2", "--seeds", "0,1", "--temperatures", "1,5", "--simplex-step", "0.25",
        "--num-train", "48", "--max-steps", "1"]


def load(name: str) -> ModuleType:
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))  # the report module imports the study module by name, as the script does
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Path, list[str]]:
    root = tmp_path_factory.mktemp("study")
    script = load("reproduction")
    args = ["--work", str(root / "work"), "--committed", str(root / "committed" / "results.sqlite"),
            "--report-dir", str(root / "report"), "--default-csv", str(SCRIPTS.parent / "docs/results/results.csv"),
            *TINY]
    threads = torch.get_num_threads()
    try:
        script.main([*args, "run", "--workers", "1"])
        script.main([*args, "snapshot"])
    finally:
        torch.set_num_threads(threads)
    return script, root, args


def test_every_part_lands_in_one_store_and_a_rerun_trains_nothing(
    tiny_study: tuple[ModuleType, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    script, root, args = tiny_study
    with RunStore(root / "committed" / "results.sqlite") as store:
        assert sorted(store.summary_names()) == sorted(n for n in script.PART_NAMES if n != "weight-decay")
        finished = {rid for rid, status in store.statuses().items() if status == "finished"}
        multilenet = read_summary(store, "multilenet")
        uw_init = read_summary(store, "uw-init+2")
    assert multilenet is not None and uw_init is not None
    # The UW-init part shares the multilenet part's STL baselines (the same runs, so the same baseline).
    assert uw_init.baseline_test == multilenet.baseline_test
    assert {m.method for m in multilenet.methods} == set(script.LOSS_WEIGHTINGS)
    uwso = next(m for m in multilenet.methods if m.method == "uwso")
    # Both points of the tiny grid {1, 5} are edges, so the part widened the grid past the first selection.
    temperatures = sorted({p.options["temperature"] for p in uwso.grid})
    assert set(temperatures) > {1.0, 5.0}
    study = script.study_of(script.argument_parser().parse_args([*args, "plan"]))
    decay_ids = {c.run_id() for c in study.weight_decay_configs(uwso.selected.options["temperature"])}
    assert len(decay_ids) == 4 * 2 * 2  # weight decays × methods × learning rates
    assert decay_ids <= finished  # every weight-decay run trained, whatever the study's scale

    capsys.readouterr()
    threads = torch.get_num_threads()
    try:
        script.main([*args, "run", "--workers", "1"])
    finally:
        torch.set_num_threads(threads)
    assert "[1/" not in capsys.readouterr().out  # nothing trained again
    script.main([*args, "status"])
    status = capsys.readouterr().out
    assert "multilenet     phase 1:" in status and "summary saved" in status and " 0 failed" in status
    # Every part has finished: nothing is left to train, and the time per run is the measured one.
    assert "still to train: at most 0 runs" in status and "≈ 0.0 h wall" in status
    assert "the mean of" in status and "estimated" not in status
    with RunStore(root / "work" / "results.sqlite") as store:
        assert {rid for rid, s in store.statuses().items() if s == "finished"} == finished


def test_report_gives_every_claim_a_verdict_from_the_stored_numbers(
    tiny_study: tuple[ModuleType, Path, list[str]]
) -> None:
    script, root, args = tiny_study
    threads = torch.get_num_threads()
    try:
        script.main([*args, "report"])
    finally:
        torch.set_num_threads(threads)
    text = (root / "report" / "STUDY.md").read_text()
    for heading in ("## Claim 1", "## Claim 2", "## Claim 3", "## Claim 4", "## UW's sensitivity",
                    "## UW-SO's temperature", "## The default benchmark against the study"):
        assert heading in text
    assert text.count("**Verdict: ") == 5
    with RunStore(root / "committed" / "results.sqlite") as store:
        multilenet = read_summary(store, "multilenet")
    assert multilenet is not None
    uwso = next(m for m in multilenet.methods if m.method == "uwso")
    assert f"{uwso.delta_m_mean:+.2f} ± {uwso.delta_m_std:.2f}" in text
    assert "Kendall's τ over the" in text
    with RunStore(root / "committed" / "results.sqlite") as store:
        finished = sum(1 for status in store.statuses().values() if status == "finished")
    assert f"cpu ({platform.machine()}), torch {torch.__version__}: {finished}." in text
    with RunStore(root / "committed" / "results.sqlite") as store:
        cpu_hours = sum(store.get(rid).cpu_seconds for rid, status in store.statuses().items()
                        if status == "finished") / 3600
    assert f"Compute of the finished runs: {cpu_hours:.1f} CPU-hours" in text
    # Claim 4 and UW's initialisations say what they cost: 2 methods × 4 weight decays × 2 learning rates.
    assert "Runs: EW 8 (" in text and "; UW-SO 8 (" in text
    # Each metric's term of Δm; their mean is Δm of the seed-mean metrics.
    row = next(line for line in text.splitlines() if line.startswith(f"| {uwso.label} | ") and line.count("|") == 6)
    terms = [float(cell) for cell in row.strip("|").split("|")[1:]]
    keys = multilenet.metric_keys
    assert sum(terms) / len(terms) == pytest.approx(
        delta_m({k: uwso.metrics_mean[k] for k in keys}, multilenet.baseline_test, multilenet.higher_is_better),
        abs=0.01)
    uw = next(m for m in multilenet.methods if m.method == "uw")
    assert f"| {uw.runs} | {uw.cpu_seconds / 3600:.2f} |" in text
    for plot in ("study_compute.png", "study_simplex.png", "study_trade_off.png", "study_models.png",
                 "study_weight_decay.png", "study_temperature.png", "study_uw_weights.png"):
        assert (root / "report" / plot).stat().st_size > 0 and f"]({plot})" in text


def test_taskbalance_report_lists_and_writes_the_study_parts(tiny_study: tuple[ModuleType, Path, list[str]]) -> None:
    _, root, _ = tiny_study
    folder = root / "committed"
    listed = CliRunner().invoke(cli, ["report", str(folder)])
    assert listed.exit_code == 0, listed.output
    assert "holds the benchmarks multilenet" in listed.output and "--summary NAME" in listed.output
    written = CliRunner().invoke(cli, ["report", str(folder), "--summary", "small_cnn"])
    assert written.exit_code == 0, written.output
    assert (folder / "small_cnn" / "report.md").exists() and (folder / "small_cnn" / "results.csv").exists()
    unknown = CliRunner().invoke(cli, ["report", str(folder), "--summary", "resnet"])
    assert unknown.exit_code == 2 and "--summary resnet" in unknown.output and "Traceback" not in unknown.output


def test_status_of_an_empty_store_leaves_every_planned_run_to_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    script = load("reproduction")
    args = ["--work", str(tmp_path / "work"), "--committed", str(tmp_path / "none.sqlite"), *TINY]
    RunStore(tmp_path / "work" / "results.sqlite").close()
    script.main([*args, "plan"])
    planned = int(re.search(r"total (\d+) runs", capsys.readouterr().out).group(1))
    script.main([*args, "status"])
    status = capsys.readouterr().out
    assert f"still to train: at most {planned} runs" in status and "estimated from" in status
    assert "weight-decay   its UW-SO runs wait for the multilenet part's temperature" in status


def test_data_on_device_leaves_every_run_id_as_it_is() -> None:
    script = load("reproduction")
    parser = script.argument_parser()
    plain = script.study_of(parser.parse_args(["run", "--device", "cpu"]))
    resident = script.study_of(parser.parse_args(["run", "--device", "cpu", "--data-on-device"]))
    assert resident.run_changes["data_on_device"] is True and "data_on_device" not in plain.run_changes
    for name, part in plain.bench_parts().items():
        assert resident.bench_parts()[name].spec.run.data_on_device and not part.spec.run.data_on_device
        assert script._phase1_run_ids(part.spec) == script._phase1_run_ids(resident.bench_parts()[name].spec)


def test_temperature_grid_is_extended_only_past_an_edge_selection() -> None:
    script = load("reproduction")
    grid = [1.0, 3.0, 20.0]
    assert script.extended_temperatures(grid, {"temperature": 20.0}) == [1.0, 3.0, 20.0, 30.0, 50.0]
    assert script.extended_temperatures(grid, {"temperature": 1.0}) == [0.4, 0.666667, 1.0, 3.0, 20.0]
    assert script.extended_temperatures(grid, {"temperature": 3.0}) is None
    assert script.extended_temperatures(grid, None) is None  # UW-SO failed: nothing to extend


# ------------------------------------------------------------------------------------------ verdicts on made-up numbers


def method(name: str, mean: float, std: float, cpu_seconds: float = 100.0, runs: int = 5) -> MethodSummary:
    point = GridPoint({}, 1e-3, mean, [f"{name}-seed0"])  # seeds 0 and 1 of the selected point, both finished
    return MethodSummary(name, name.upper(), point, mean, std, [mean - std, mean + std], {}, {}, 0, runs,
                         cpu_seconds, [point], [f"{name}-seed0", f"{name}-seed1"])


def summary(model: str, *methods: MethodSummary) -> BenchSummary:
    return BenchSummary("multifashion", model, ["a", "b"], [], {}, "all_metrics", {}, {}, list(methods), [0, 1])


@pytest.fixture(scope="module")
def report() -> ModuleType:
    load("reproduction")
    return load("reproduction_report")


@pytest.mark.parametrize(
    ("ew_mean", "label"),
    [(5.0, "confirmed"), (1.5, "mixed"), (0.5, "mixed"), (-3.0, "not confirmed")],
    ids=["clearly-best", "best-within-noise", "second-within-noise", "clearly-beaten"],
)
def test_claim1_verdict_weighs_gaps_against_the_seed_noise(report: ModuleType, ew_mean: float, label: str) -> None:
    # Noise of the UW-SO/EW gap: √(1² + 1²) ≈ 1.41.
    verdict = report.claim_uwso_best(summary("multilenet", method("uwso", 1.0, 1.0), method("ew", ew_mean, 1.0)))
    assert verdict.label == label


def test_claim1_verdict_names_what_uwso_beats_and_what_it_cannot_separate(report: ModuleType) -> None:
    verdict = report.claim_uwso_best(summary("multilenet", method("uwso", 1.0, 1.0), method("ew", 5.0, 1.0),
                                             method("gls", 1.5, 1.0)))
    assert verdict.label == "mixed"
    assert "GLS (+1.50 ± 1.00) is within the seed noise" in verdict.why
    assert "It beats EW (+5.00 ± 1.00) by more than the seed noise." in verdict.why
    alone = report.claim_uwso_best(summary("multilenet", method("uwso", 1.0, 1.0), method("gls", 1.5, 1.0)))
    assert "It beats no other weighting" in alone.why


def test_searched_seed_gap_counts_methods_whose_first_seed_is_lower(report: ModuleType) -> None:
    lucky, unlucky = method("ew", 5.0, 1.0), method("uw", 5.0, 1.0)
    lucky.delta_m_per_seed, unlucky.delta_m_per_seed = [4.0, 5.0, 6.0], [7.0, 4.0, 4.0]
    three_seeds = summary("multilenet", lucky, unlucky)
    three_seeds.seeds = [0, 1, 2]
    text = report.searched_seed_gap(three_seeds)
    assert "lower test Δm than the mean of the other seeds for 1 of 2 methods (mean gap +0.75 points)" in text
    single = method("ew", 5.0, 0.0)
    single.delta_m_per_seed = [5.0]
    assert report.searched_seed_gap(summary("multilenet", single)) == ""


def test_softmax_effect_compares_uwso_with_uwo_against_the_noise(report: ModuleType) -> None:
    same = report.softmax_effect(method("uwso", 2.0, 0.4, runs=23), method("uwo", 2.2, 0.3, runs=5))
    assert "within the seed noise (0.50)" in same and "23 runs" in same and "in 5" in same
    assert "UW-SO better by 3.00" in report.softmax_effect(method("uwso", 2.0, 0.4), method("uwo", 5.0, 0.3))
    assert "UW-O better by 3.00" in report.softmax_effect(method("uwso", 5.0, 0.4), method("uwo", 2.0, 0.3))


def test_claim2_counts_cost_and_closeness(report: ModuleType) -> None:
    paper = summary("multilenet", method("uwso", 2.0, 0.5, cpu_seconds=100.0, runs=23))
    close = report.claim_close_to_scalarization(paper, summary("multilenet", method("scalarization", 1.5, 0.5,
                                                                                    cpu_seconds=500.0, runs=110)))
    assert close.label == "confirmed" and "5.0× the CPU time" in close.why and "110 runs" in close.why
    far = report.claim_close_to_scalarization(paper, summary("multilenet", method("scalarization", -2.0, 0.5)))
    assert far.label == "not confirmed"
    assert report.claim_close_to_scalarization(paper, None).label == "not run yet"


def test_simplex_points_score_every_finished_grid_run_like_the_part_summary(
    tiny_study: tuple[ModuleType, Path, list[str]], report: ModuleType
) -> None:
    script, root, args = tiny_study
    study = script.study_of(script.argument_parser().parse_args([*args, "plan"]))
    with RunStore(root / "committed" / "results.sqlite") as store:
        paper, brute = read_summary(store, "multilenet"), read_summary(store, "scalarization")
        assert paper is not None and brute is not None
        points, total = report.simplex_points(study, store, paper)
        first_seed = report.first_seed_test_metrics(store, paper)
        uwso = next(m for m in paper.methods if m.method == "uwso")
        uwso_first = store.get(uwso.seed_run_ids[0])
    scalarization = brute.methods[0]
    assert total == len(scalarization.grid) == len(points)  # every weight vector × learning rate has finished
    assert all(p.test_metrics.keys() == set(paper.metric_keys) for p in points)
    # One seed-0 run per finished method, scored at its selected epoch like the grid's points.
    assert set(first_seed) == {m.label for m in paper.methods if not m.failed}
    assert uwso_first is not None and uwso_first.config.seed == 0
    uwso_test = first_seed["UW-SO"]
    assert score(uwso_test, paper.baseline_test, paper.higher_is_better) == pytest.approx(
        uwso.delta_m_per_seed[0])
    # The same validation Δm per grid point as the part's own summary (one searched seed), read from the runs.
    by_point = {(tuple(g.options["weights"]), g.lr): g.val_delta_m for g in scalarization.grid}
    assert {(p.weights, p.lr): p.val_delta_m for p in points} == pytest.approx(by_point)


def test_part_so_far_scores_an_unfinished_part_with_its_own_protocol(
    tiny_study: tuple[ModuleType, Path, list[str]], report: ModuleType, tmp_path: Path
) -> None:
    script, root, args = tiny_study
    study = script.study_of(script.argument_parser().parse_args([*args, "plan"]))
    partial = tmp_path / "results.sqlite"
    partial.write_bytes((root / "committed" / "results.sqlite").read_bytes())
    with RunStore(partial) as store:
        saved = read_summary(store, script.LARGER_MODEL)
        paper = read_summary(store, "multilenet")
        assert saved is not None and paper is not None
        uw = next(m for m in saved.methods if m.method == "uw")
        # One of UW's grid runs and the seed-1 runs of every selected point are not finished yet.
        unfinished = [uw.grid[-1].run_ids[0], *(rid for m in saved.methods for rid in m.seed_run_ids[1:])]
        store.connection.executemany("UPDATE runs SET status = 'running' WHERE run_id = ?",
                                     [(rid,) for rid in unfinished])
        store.connection.commit()
        so_far = report.part_so_far(study, store, script.LARGER_MODEL)
        spec = study.bench_parts()[script.LARGER_MODEL].spec
        stl_id = next(c.run_id() for per_lr in stl_configs(spec).values() for configs in per_lr for c in configs)
        store.connection.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (stl_id,))
        store.connection.commit()
        before_stl = report.part_so_far(study, store, script.LARGER_MODEL)
    assert so_far.summary is not None and so_far.stl_finished == so_far.stl_total
    assert so_far.finished == so_far.total - 1
    methods = {m.method: m for m in so_far.summary.methods}
    assert "uw" not in methods  # its grid is not complete, so its selection would be a partial grid's
    for name, method in methods.items():
        if name == "uwso":
            continue  # the saved part widened UW-SO's temperatures past the tiny grid's edges
        saved_method = next(m for m in saved.methods if m.method == name)
        assert method.selected.lr == saved_method.selected.lr
        assert method.delta_m_per_seed == pytest.approx(saved_method.delta_m_per_seed[:1])
    text = "\n".join(report.claim3_so_far(paper, so_far))
    assert "**So far (not a verdict):**" in text and "Verdict:" not in text
    assert f"the whole grid of {len(methods)} of the {len(paper.methods)} methods" in text
    assert before_stl.summary is None and before_stl.stl_finished == before_stl.stl_total - 1
    assert "no Δm exists before all of them have" in "\n".join(report.claim3_so_far(paper, before_stl))


def test_scalarization_so_far_reports_the_best_point_without_a_verdict(report: ModuleType) -> None:
    points = [report.SimplexPoint((0.1, 0.1, 0.8), 1e-3, 1.77, 1.76),
              report.SimplexPoint((0.2, 0.1, 0.7), 1e-2, 3.2, 3.0)]
    uwso = method("uwso", 2.48, 0.4)  # seeds: +2.08, +2.88
    uwso.selected.val_delta_m = 1.67
    text = report.scalarization_so_far(points, 108, uwso)
    assert "2 of the 108 grid-search runs" in text and "weights (0.1, 0.1, 0.8) at lr 0.001" in text
    assert "validation Δm +1.77, test Δm +1.76" in text and "validation Δm +1.67, test Δm +2.08" in text
    assert "Verdict" not in text
    assert "None of the 108" in report.scalarization_so_far([], 108, uwso)


def test_claim3_compares_spreads_over_common_methods(report: ModuleType) -> None:
    small = summary("multilenet", method("uwso", 0.0, 0.5), method("ew", 10.0, 0.5), method("gls", 5.0, 0.5))
    shrinks = summary("small_cnn", method("uwso", 0.0, 0.5), method("ew", 2.0, 0.5), method("gls", 1.0, 0.5))
    grows = summary("small_cnn", method("uwso", 0.0, 0.5), method("ew", 20.0, 0.5), method("gls", 1.0, 0.5))
    verdict, spreads = report.claim_larger_network(small, shrinks)
    assert verdict.label == "confirmed" and [s.max_minus_min for s in spreads] == [10.0, 2.0]
    assert report.claim_larger_network(small, grows)[0].label == "not confirmed"
    # method() gives each method the seeds mean ∓ std: spreads per seed 10, 10 on multilenet; 2, 2 when shrinking.
    assert "Seed by seed, max − min is 10.00, 10.00 on multilenet and 2.00, 2.00 on small_cnn: smaller on " \
           "small_cnn on 2 of 2 seeds." in verdict.why
    mixed_luck = summary("small_cnn", method("uwso", 0.0, 0.5), method("ew", 2.0, 0.5), method("gls", 1.0, 0.5))
    mixed_luck.methods[1].delta_m_per_seed = [2.0, 12.0]
    assert "smaller on small_cnn on 1 of 2 seeds" in report.claim_larger_network(small, mixed_luck)[0].why
    assert report.claim_larger_network(small, None)[0].label == "not run yet"


def test_claim3_says_when_one_method_decides_the_spread_and_whether_the_order_holds(report: ModuleType) -> None:
    # On the larger model UW-SO alone is far ahead; without it the other methods lie closer than on the smaller one.
    small = summary("multilenet", method("uwso", 2.0, 0.5), method("ew", 6.0, 0.5), method("gls", 2.5, 0.5),
                    method("rlw", 6.5, 0.5))
    large = summary("small_cnn", method("uwso", 6.0, 0.5), method("ew", 12.0, 0.5), method("gls", 13.0, 0.5),
                    method("rlw", 14.0, 0.5))
    verdict, _ = report.claim_larger_network(small, large)
    assert verdict.label == "not confirmed"  # 8.0 against 4.5
    assert ("Leaving out one method at a time, max − min is smaller on small_cnn in 1 of 4 cases; the method that "
            "changes the comparison most is UWSO (without it: 4.00 on multilenet, 2.00 on small_cnn).") in verdict.why
    # Orders uwso, gls, ew, rlw and uwso, ew, gls, rlw: 5 of 6 pairs agree, τ = (5 − 1)/6.
    assert "Kendall's τ between the two models' orders of the methods is +0.67." in verdict.why


def gridded(name: str, selected: tuple[float, dict[str, object]], points: list[tuple[float, dict[str, object]]]
            ) -> MethodSummary:
    """A method whose grid holds ``points`` (learning rate, options) and whose selection is ``selected``."""
    grid = [GridPoint(dict(options), lr, 1.0, []) for lr, options in points]
    chosen = next(g for g in grid if (g.lr, g.options) == (selected[0], selected[1]))
    return MethodSummary(name, name.upper(), chosen, 1.0, 0.1, [1.0], {}, {}, 1, len(grid), 1.0, grid, [])


def test_grid_edges_names_selections_at_the_end_of_a_grid_of_three_or_more(report: ModuleType) -> None:
    lrs = [1e-4, 1e-3, 1e-2]
    inside = gridded("ew", (1e-3, {}), [(lr, {}) for lr in lrs])
    top = gridded("uw", (1e-2, {}), [(lr, {}) for lr in lrs])
    cold = gridded("uwso", (1e-3, {"temperature": 1.0}),
                   [(lr, {"temperature": t}) for lr in lrs for t in (1.0, 3.0, 5.0)])
    assert report.grid_edges(summary("multilenet", inside)) == "No selected point lies on an edge of its grid."
    text = report.grid_edges(summary("multilenet", inside, top, cold))
    assert "UW (lr 0.01, the largest of 3); UWSO (temperature 1, the least of 3)" in text
    assert "EW" not in text and "every selected one" not in text


def test_grid_edges_says_once_that_two_learning_rates_make_every_selection_an_edge(report: ModuleType) -> None:
    pair = summary("small_cnn", gridded("ew", (1e-2, {}), [(1e-3, {}), (1e-2, {})]),
                   gridded("uw", (1e-3, {}), [(1e-3, {}), (1e-2, {})]))
    text = report.grid_edges(pair)
    assert text.startswith("No selected point lies on an edge in any of its grid's axes of three or more values.")
    assert text.count("The learning rate has only two values in the grid, so every selected one is an edge") == 1


def test_grid_edges_puts_a_weight_vector_on_the_simplex_boundary_by_its_least_weight(report: ModuleType) -> None:
    vectors = [[0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.1, 0.45, 0.45]]
    corner = gridded("scalarization", (1e-3, {"weights": vectors[0]}), [(1e-3, {"weights": v}) for v in vectors])
    centre = gridded("scalarization", (1e-3, {"weights": vectors[1]}), [(1e-3, {"weights": v}) for v in vectors])
    assert "SCALARIZATION (2 of its weights at the grid's least, 0.1)" in report.grid_edges(summary("m", corner))
    assert report.grid_edges(summary("m", centre)).startswith("No selected point")


def test_grid_containment_checks_each_selection_against_the_other_models_grid(report: ModuleType) -> None:
    small_grid = [(lr, {"temperature": t}) for lr in (1e-3, 1e-2) for t in (1.0, 5.0)]
    large = summary("small_cnn", gridded("uwso", (1e-3, {"temperature": 1.0}), small_grid),
                    gridded("ew", (1e-3, {}), [(1e-3, {}), (1e-2, {})]))
    wide = [(lr, {"temperature": t}) for lr in (1e-4, 1e-3, 1e-2) for t in (1.0, 3.0, 5.0)]
    contained = summary("multilenet", gridded("uwso", (1e-2, {"temperature": 5.0}), wide),
                        gridded("ew", (1e-3, {}), [(1e-4, {}), (1e-3, {}), (1e-2, {})]))
    assert "would select the same points" in report.grid_containment(contained, large)
    outside = summary("multilenet", gridded("uwso", (1e-3, {"temperature": 3.0}), wide),
                      gridded("ew", (1e-4, {}), [(1e-4, {}), (1e-3, {}), (1e-2, {})]))
    text = report.grid_containment(outside, large)
    assert "UWSO (lr 0.001, temperature=3), EW (lr 0.0001)" in text and "may come from the grids" in text
    assert report.grid_containment(outside, summary("small_cnn")) == ""


def test_a_method_on_one_seed_has_unknown_noise_so_no_gap_to_it_counts(report: ModuleType) -> None:
    lone = method("uwso", 2.0, 0.0)
    lone.delta_m_per_seed = [2.0]  # its other seeds failed
    assert report.noise(lone, method("gls", 2.6, 0.5)) == math.inf
    assert report.pm(lone) == "+2.00 (one seed, no spread)"
    assert report.claim_uwso_best(summary("multilenet", lone, method("gls", 2.6, 0.5))).label == "mixed"
    far = summary("multilenet", method("scalarization", 1.0, 0.5))
    assert report.claim_close_to_scalarization(summary("multilenet", lone), far).label == "mixed"
    small = summary("multilenet", method("uwso", 0.0, 0.5), method("ew", 10.0, 0.5))
    large = summary("small_cnn", lone, method("ew", 2.1, 0.5))
    verdict, _ = report.claim_larger_network(small, large)
    assert verdict.label == "mixed" and "the seed noise is unknown" in verdict.why


def test_claim1_is_judged_against_the_methods_it_names_not_uwo(report: ModuleType) -> None:
    # UW-O is compared with UW-SO separately (softmax_effect); a clear UW-O win does not contradict claim 1.
    verdict = report.claim_uwso_best(summary("multilenet", method("uwso", 2.0, 0.1), method("uwo", -5.0, 0.1),
                                             method("ew", 9.0, 0.1)))
    assert verdict.label == "confirmed" and "UWO" not in verdict.why


def test_claim3_without_two_common_methods_has_no_spread(report: ModuleType) -> None:
    small = summary("multilenet", method("uwso", 0.0, 0.5), method("ew", 10.0, 0.5))
    assert report.claim_larger_network(small, summary("small_cnn", method("ew", 1.0, 0.5)))[0].label == "not run yet"
    assert report.claim_larger_network(small, summary("small_cnn"))[0].label == "not run yet"


def test_the_first_seed_is_read_from_run_ids_not_from_list_positions(report: ModuleType) -> None:
    ran = method("ew", 5.0, 1.0)
    ran.selected.run_ids, ran.seed_run_ids, ran.delta_m_per_seed = ["s0"], ["s0", "s1", "s2"], [4.0, 5.0, 6.0]
    lost = method("uw", 5.0, 1.0)  # seed 0 failed: its first entry is seed 1's
    lost.selected.run_ids, lost.seed_run_ids, lost.delta_m_per_seed = ["s0"], ["s1", "s2"], [4.0, 6.0]
    assert report.first_seed_delta_m(ran) == 4.0 and math.isnan(report.first_seed_delta_m(lost))
    three = BenchSummary("multifashion", "m", ["a"], [], {}, "all_metrics", {}, {}, [ran, lost], [0, 1, 2])
    assert "for 1 of 1 methods" in report.searched_seed_gap(three)  # the method without seed 0 is left out


def test_grid_containment_names_points_the_first_model_never_ran(report: ModuleType) -> None:
    # The larger model's part widened UW-SO's temperatures to 30, which multilenet never ran.
    wide = [(lr, {"temperature": t}) for lr in (1e-3, 1e-2) for t in (1.0, 5.0, 20.0)]
    small = summary("multilenet", gridded("uwso", (1e-3, {"temperature": 5.0}), wide))
    extended = summary("small_cnn", gridded("uwso", (1e-3, {"temperature": 20.0}),
                                            [*wide, (1e-3, {"temperature": 30.0}), (1e-2, {"temperature": 30.0})]))
    text = report.grid_containment(small, extended)
    assert "holds points multilenet never ran for UWSO (2 points)" in text
    assert "would select the same points:" not in text
    same = summary("small_cnn", gridded("uwso", (1e-3, {"temperature": 20.0}), wide))
    assert "would select the same points" in report.grid_containment(small, same)


def test_claim4_leaves_out_failed_cells_and_waits_for_unfinished_ones(report: ModuleType) -> None:
    lrs, decays = [1e-3, 1e-2], [0.0, 1e-4]
    values = np.array([[2.0, 9.0], [np.nan, 9.1]])
    failed = report.DecayGrid("ew", lrs, decays, values, np.zeros((2, 2)), failed=1)
    verdict = report.claim_weight_decay([failed])
    assert verdict.label != "not run yet" and "1 failed cell(s) left out" in verdict.why
    assert report.claim_weight_decay([report.DecayGrid("ew", lrs, decays, values, np.zeros((2, 2)))]).label == \
        "not run yet"
    column = report.DecayGrid("ew", lrs, decays, np.array([[np.nan, 9.0], [np.nan, 9.1]]), np.zeros((2, 2)), failed=2)
    assert "no range to compare" in report.claim_weight_decay([column]).why


def test_claim4_compares_ranges_over_lr_and_weight_decay(report: ModuleType) -> None:

    lr_matters = report.DecayGrid("ew", [1e-4, 1e-3], [0.0, 1e-5], np.array([[10.0, 2.0], [10.5, 2.2]]),
                                  np.zeros((2, 2)))
    wd_matters = report.DecayGrid("ew", [1e-4, 1e-3], [0.0, 1e-5], np.array([[2.0, 2.5], [10.0, 10.0]]),
                                  np.zeros((2, 2)))
    missing = report.DecayGrid("ew", [1e-4, 1e-3], [0.0, 1e-5], np.array([[2.0, np.nan], [10.0, 10.0]]),
                               np.zeros((2, 2)))
    assert report.claim_weight_decay([lr_matters]).label == "confirmed"
    assert report.claim_weight_decay([wd_matters]).label == "not confirmed"
    assert report.claim_weight_decay([missing]).label == "not run yet"


def test_claim4_is_mixed_when_only_the_under_trained_rate_makes_the_lr_matter(report: ModuleType) -> None:

    lrs, decays = [1e-4, 1e-3, 1e-2], [0.0, 1e-3]
    # lr 1e-4 is far worse everywhere; between 1e-3 and 1e-2 the weight decay matters more than the rate.
    corner = report.DecayGrid("ew", lrs, decays, np.array([[30.0, 2.0, 2.5], [31.0, 6.0, 6.5]]), np.zeros((2, 3)))
    verdict = report.claim_weight_decay([corner])
    assert verdict.label == "mixed" and "dwarfs the weight decay only through the under-trained rate" in verdict.why
    assert 'which reads "not confirmed"' in verdict.why and 'On the whole grid this reads "confirmed"' in verdict.why
    # The learning rate matters beyond the corner too: both readings agree.
    robust = report.DecayGrid("ew", lrs, decays, np.array([[30.0, 2.0, 9.0], [30.5, 2.2, 9.1]]), np.zeros((2, 3)))
    agreed = report.claim_weight_decay([robust])
    assert agreed.label == "confirmed" and "disagree" not in agreed.why


def test_selected_text_keeps_the_whole_weight_vector(report: ModuleType) -> None:
    point = GridPoint({"weights": [0.25, 0.25, 0.5]}, 1e-2, 0.0, [])
    scalarization = MethodSummary("scalarization", "Scalarization", point, 0.0, 0.0, [0.0], {}, {}, 1, 1, 1.0)
    assert report.selected_text(scalarization) == "lr 0.01, weights=(0.25, 0.25, 0.5)"
    assert report.selected_text(method("ew", 1.0, 0.1)) == "lr 0.001"


def test_gpu_session_script_parses_and_stops_cleanly_without_a_gpu(tmp_path: Path) -> None:
    import subprocess

    script = Path(__file__).resolve().parents[2] / "scripts" / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the script would measure it")  # never on CI, which has no GPU
    done = subprocess.run(["bash", str(script), "60", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA GPU visible" in done.stderr
    assert "available False" in (tmp_path / "environment.txt").read_text()
    assert not (tmp_path / "gpu_check.md").exists()


def test_every_run_of_the_committed_study_store_keeps_its_run_id() -> None:
    import json
    import sqlite3

    from taskbalance.training.config import RunConfig

    committed = Path(__file__).resolve().parents[2] / "docs" / "results" / "reproduction" / "study" / "results.sqlite"
    # immutable: read-only without the -wal/-shm side files a WAL database otherwise gets beside it
    with sqlite3.connect(f"file:{committed}?mode=ro&immutable=1", uri=True) as db:
        rows = db.execute("SELECT run_id, config FROM runs").fetchall()
    assert len(rows) > 200
    changed = [run_id for run_id, config in rows if RunConfig.from_dict(json.loads(config)).run_id() != run_id]
    assert changed == []  # a change of the run identity would orphan the study's stored runs
