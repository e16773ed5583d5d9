"""Benchmark presets: the fast default is unchanged run for run, the paper setups carry the published values, and
`taskbalance bench --preset NAME --dry-run` plans without training or data."""

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskbalance.cli import PRESET_NAMES, main
from taskbalance.protocol.bench import BenchSpec, plan, run_bench, search_grid, stl_configs
from taskbalance.protocol.grid import PAPER_TEMPERATURES, simplex_grid
from taskbalance.protocol.presets import PAPER_LRS, PRESETS
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult
from taskbalance.types import SearchSpace
from taskbalance.weighting import UWSO, Scalarization

TASKS = ["left", "right", "depth"]


def old_config(method: str, options: dict, lr: float, seed: int, tasks: list[str]) -> RunConfig:
    """How `taskbalance bench` built a run before presets existed (every field it set, the rest RunConfig's)."""
    return RunConfig(
        dataset="multifashion", dataset_options={}, model="multilenet", model_options={}, tasks=list(tasks),
        method=method, method_options=dict(options), lr=lr, weight_decay=1e-5, lr_step=100, lr_gamma=0.5, epochs=3,
        batch_size=256, seed=seed, max_steps_per_epoch=0,
    )


def old_candidates(lrs: list[float], temperatures: list[float]) -> list[RunConfig]:
    """Every configuration the old default could start: each method's grid × learning rates × seeds, and STL."""
    grids: dict[str, list[dict]] = {m: [{}] for m in ("ew", "uw", "uwo", "uwso", "dwa", "rlw", "imtll", "gls")}
    grids["uwso"] = [{"temperature": t} for t in temperatures]
    grids["scalarization"] = [{"weights": list(w)} for w in simplex_grid(3)]
    configs = [old_config(m, p, lr, s, TASKS) for m, ps in grids.items() for p in ps for lr in lrs for s in (0, 1, 2)]
    configs += [old_config("ew", {}, lr, s, [task]) for task in TASKS for lr in lrs for s in (0, 1, 2)]
    return configs


def candidates(spec: BenchSpec) -> list[RunConfig]:
    configs = [spec.config(m, p, lr, s, spec.trained_tasks)
               for m in spec.methods for p in spec.grid(m) for lr in spec.lrs for s in spec.seeds]
    configs += [c for per_lr in stl_configs(spec).values() for seeds in per_lr for c in seeds]
    return configs


def digest(configs: list[RunConfig]) -> str:
    return hashlib.sha256(",".join(sorted(c.run_id() for c in configs)).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("name", "lrs", "temperatures", "count", "pinned"),
    [
        # Pinned: the digest of the run_ids the pre-preset code built (so stored results stay valid).
        ("fast", [1e-3], [1.0, 3.0, 5.0, 10.0, 20.0], 153, "8aa0011b8eccc462"),
        ("full", [1e-4, 5e-4, 1e-3], list(PAPER_TEMPERATURES), 477, "1906d763e14be6f2"),
    ],
)
def test_fast_and_full_presets_build_exactly_the_old_configs(name, lrs, temperatures, count, pinned) -> None:
    spec = PRESETS[name].spec(TASKS)
    new = candidates(spec)
    old = old_candidates(lrs, temperatures)
    assert [c.to_dict() for c in new] == [c.to_dict() for c in old]
    assert len(new) == count and digest(new) == pinned


def test_fast_preset_starts_the_old_runs_in_the_old_phases() -> None:
    started: list[list[str]] = []

    def fake_run_many(configs: list[RunConfig]) -> dict[str, RunResult]:
        started.append([c.run_id() for c in configs])
        results = {}
        for c in configs:
            metrics = {"left/acc": 0.5 + 0.001 * c.seed, "right/acc": 0.5, "depth/mae": 0.1}
            val = {k: v for k, v in metrics.items() if k.split("/")[0] in c.tasks}
            directions = {k: k.endswith("acc") for k in val}
            record = EpochRecord(1, {}, val, dict(val), {}, c.lr, 1.0)
            results[c.run_id()] = RunResult(c, list(c.tasks), directions, [record])
        return results

    run_bench(PRESETS["fast"].spec(TASKS), fake_run_many)
    old_ids = {c.run_id() for c in old_candidates([1e-3], [1.0, 3.0, 5.0, 10.0, 20.0])}
    assert [len(phase) for phase in started] == [71, 4]  # the committed default: 75 runs
    assert set(started[0]) | set(started[1]) <= old_ids


@pytest.mark.parametrize(
    ("name", "dataset", "model", "batch_size", "epochs", "lr_step"),
    [
        ("nyuv2-segnet", "nyuv2", "segnet", 8, 200, 100),
        ("nyuv2-deeplabv3plus", "nyuv2", "deeplabv3plus", 8, 200, 100),
        ("cityscapes-segnet", "cityscapes", "segnet", 64, 300, 100),
        ("cityscapes-deeplabv3plus", "cityscapes", "deeplabv3plus", 64, 300, 100),
        ("celeba-resnet18", "celeba", "resnet18", 512, 100, 30),
    ],
)
def test_paper_presets_carry_the_published_hyper_parameters(name, dataset, model, batch_size, epochs, lr_step) -> None:
    preset = PRESETS[name]
    run = preset.run
    assert (run.dataset, run.model, run.batch_size, run.epochs, run.lr_step) == (dataset, model, batch_size, epochs,
                                                                                  lr_step)
    assert run.lr_gamma == 0.5 and run.weight_decay == 1e-5
    assert preset.lrs == PAPER_LRS == (1e-4, 1e-3, 1e-2)
    assert preset.search == "all_seeds" and preset.seeds == (0, 1, 2) and preset.needs_data_root
    assert preset.temperatures[: len(PAPER_TEMPERATURES)] == PAPER_TEMPERATURES
    if dataset == "cityscapes":  # extended upward for the small inverse-depth loss
        assert max(preset.temperatures) == 100.0
    else:
        assert preset.temperatures == PAPER_TEMPERATURES
    # 40 CelebA tasks leave no simplex point with every weight ≥ 0.1, so Scalarization is not part of that setup.
    assert ("scalarization" in preset.spec().methods) == (dataset != "celeba")
    assert len(preset.spec().trained_tasks) == {"nyuv2": 3, "cityscapes": 2, "celeba": 40}[dataset]


def test_a_task_subset_whose_simplex_exists_keeps_scalarization() -> None:
    three = PRESETS["celeba-resnet18"].spec(run_changes={"tasks": ["Smiling", "Male", "Young"]})
    assert "scalarization" in three.methods and "uwso" in three.methods
    with pytest.raises(ValueError, match="no simplex point for 40 tasks"):  # asked for by name: refused, not dropped
        PRESETS["celeba-resnet18"].spec(methods=["scalarization", "ew"])


def test_the_cli_offers_exactly_the_presets() -> None:
    assert tuple(PRESETS) == PRESET_NAMES


def test_dry_run_of_the_default_counts_the_committed_benchmark(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--dry-run", "--out", str(tmp_path / "bench")])
    assert result.exit_code == 0, result.output
    assert "total: 75 runs (phase 1: 71, phase 2: 4) × 3 epochs = 225 run-epochs" in result.output
    assert "scalarization" in result.output and "min wall with 2 workers" in result.output
    assert not (tmp_path / "bench").exists()  # nothing trained, nothing written


def test_dry_run_of_a_paper_preset_needs_no_data_files() -> None:
    result = CliRunner().invoke(main, ["bench", "--preset", "cityscapes-segnet", "--dry-run"])
    assert result.exit_code == 0, result.output
    # STL: 2 tasks × 3 LRs × 3 seeds; UW-SO: 11 temperatures × 3 LRs × 3 seeds; Scalarization: 9 points × 3 × 3.
    assert "STL baselines     18 runs" in result.output
    assert "uwso              99 runs" in result.output and "scalarization     81 runs" in result.output
    assert "× 300 epochs" in result.output and "no measured epoch time" in result.output


def test_a_paper_preset_without_data_root_is_a_usage_error_naming_the_flag() -> None:
    result = CliRunner().invoke(main, ["bench", "--preset", "nyuv2-segnet"])
    assert result.exit_code == 2
    assert "--data-root" in result.output and "nyuv2" in result.output


def test_explicit_flags_override_the_preset() -> None:
    args = ["bench", "--preset", "full", "--dry-run", "--lrs", "0.001", "--epochs", "7", "--seeds", "0,1",
            "--methods", "ew,uwso", "--temperatures", "1,2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    # STL 3 tasks × 1 LR × 2 seeds; EW 2; UW-SO 2 temperatures × 2 seeds (the full preset searches every seed).
    assert "total: 12 runs (phase 1: 12, phase 2: 0) × 7 epochs" in result.output
    spec = PRESETS["full"].spec(TASKS, run_changes={"epochs": 7}, lrs=[1e-3])
    assert spec.run.epochs == 7 and spec.lrs == [1e-3] and spec.temperatures == list(PAPER_TEMPERATURES)


def test_full_is_an_alias_and_conflicts_with_another_preset() -> None:
    alias = CliRunner().invoke(main, ["bench", "--full", "--dry-run"])
    named = CliRunner().invoke(main, ["bench", "--preset", "full", "--dry-run"])
    assert alias.exit_code == named.exit_code == 0 and alias.output == named.output
    clash = CliRunner().invoke(main, ["bench", "--full", "--preset", "fast", "--dry-run"])
    assert clash.exit_code == 2 and "--full is --preset full" in clash.output


def test_grids_come_from_the_method_classes() -> None:
    space = SearchSpace(num_tasks=3, temperatures=(2.0, 4.0))
    assert search_grid("uwso", space) == UWSO.search_grid(space) == [{"temperature": 2.0}, {"temperature": 4.0}]
    assert search_grid("scalarization", space) == Scalarization.search_grid(space)
    assert len(search_grid("scalarization", space)) == 36
    assert search_grid("dwa", space) == [{}] and search_grid("pcgrad", space) == [{}]


def test_a_fixed_option_replaces_the_grid_it_would_search() -> None:
    spec = BenchSpec(task_names=["a", "b"], methods=["uwso", "scalarization"], temperatures=[1.0, 2.0],
                     method_options={"uwso": {"temperature": 7.0}, "scalarization": {"validate": False}})
    assert spec.grid("uwso") == [{"temperature": 7.0}]
    assert spec.grid("scalarization")[0] == {"validate": False, "weights": [0.1, 0.9]}
    assert plan(spec).methods[0].phase1_runs == 3  # a one-point grid runs on every seed at once


def test_an_empty_temperature_grid_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="temperature grid is empty"):
        BenchSpec(task_names=["a", "b"], methods=["uwso"], temperatures=[])


def test_dry_run_shows_the_run_template_with_overrides() -> None:
    args = ["bench", "--preset", "nyuv2-deeplabv3plus", "--dry-run", "--model-option", "pretrained=r50.pth",
            "--data-root", "/nowhere"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "dataset_options={'root': '/nowhere'}" in result.output
    assert "model=deeplabv3plus, model_options={'pretrained': 'r50.pth'}, epochs=200, batch_size=8" in result.output



def test_reproduction_preset_is_the_measured_converged_setting_and_its_runs_stay_put() -> None:
    preset = PRESETS["reproduction"]
    # docs/results/reproduction: lr 1e-3 plateaus after 35–40 epochs, so 50 epochs with the rate halved at 30.
    assert (preset.run.epochs, preset.run.lr_step, preset.run.lr_gamma) == (50, 30, 0.5)
    assert preset.lrs == PAPER_LRS and preset.temperatures == PAPER_TEMPERATURES
    assert preset.search == "one_seed" and not preset.needs_data_root
    # Pinned: the committed study store (docs/results/reproduction/study) holds runs with exactly these ids; a change
    # of the preset would orphan them.
    configs = candidates(preset.spec(TASKS))
    assert len(configs) == 477 and digest(configs) == "76c9e1910a3521bd"
