"""The paper's protocol: STL baselines, each method over its grid × seeds, selection by validation Δm, test Δm.

Kirchdorfer et al. 2024, Sec. 5: single-task baselines with the same backbone; per method a learning-rate grid (and
UW-SO's temperature grid, the Scalarization simplex grid) over 3 seeds; the configuration with the best validation
Δm is selected and its test Δm reported as mean ± std over the seeds.

Two search modes:

* ``"all_seeds"`` (the paper, ``taskbalance bench --full``): every grid point on every seed; a point's score is its
  validation Δm averaged over seeds.
* ``"one_seed"`` (the fast default): every grid point on the first seed; the selected point is then run on the other
  seeds. Methods whose grid has a single point run on every seed at once.

Runs never depend on each other's results, so the driver hands every run of a phase to the executor at once:
phase 1 = STL baselines + the grid search, phase 2 = the selected points on the remaining seeds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskbalance import methods as method_registry
from taskbalance.protocol.delta_m import undefined_baselines
from taskbalance.protocol.grid import PAPER_TEMPERATURES
from taskbalance.protocol.selection import defined_part, rank_key, score, selected_record
from taskbalance.protocol.summary import BenchSummary, GridPoint, MethodSummary
from taskbalance.training.config import NOT_IDENTITY, RunConfig
from taskbalance.training.result import EpochRecord, RunResult
from taskbalance.types import SearchSpace

PAPER_METHODS: tuple[str, ...] = ("ew", "uw", "uwo", "uwso", "dwa", "rlw", "imtll", "gls", "scalarization")
SEARCH_MODES = ("one_seed", "all_seeds")

RunMany = Callable[[list[RunConfig]], Mapping[str, RunResult]]
"""Runs configs (skipping those already finished) and returns run_id → result of each that finished; a run left out
of the answer failed."""


def search_grid(name: str, space: SearchSpace) -> list[dict[str, Any]]:
    """A method's own search grid over ``space`` (its class's ``search_grid``: one empty point for most methods)."""
    return [dict(point) for point in method_registry.method_class(name).search_grid(space)]


@dataclass
class BenchSpec:
    """What a benchmark runs.

    Attributes:
        task_names: the tasks' names in order, as the dataset defines them (needed for the Scalarization grid size
            and for STL; filled by the caller from the dataset when ``run.tasks`` is empty).
        run: the template of every run: dataset, model, their options, the benchmarked tasks (empty: all of the
            dataset's; the STL baselines cover each of them), epochs, batch size, schedule, weight decay, step cap.
            Its ``method``, ``method_options``, ``lr`` and ``seed`` are set per run (and ``tasks`` for STL runs).
        methods: registry names of the methods to compare.
        seeds: seeds of the reported runs.
        lrs: the learning-rate grid of every method and of the STL baselines.
        temperatures, simplex_step, simplex_min_weight: the :class:`~taskbalance.types.SearchSpace` from which each
            method derives its own grid (UW-SO's temperatures, the Scalarization simplex).
        search: ``"one_seed"`` or ``"all_seeds"`` (see the module docstring).
        delta_m_variant: ``"all_metrics"`` (the paper's Δm) or ``"per_task"``.
        method_options: fixed hyper-parameters per method, merged into every grid point; fixing a hyper-parameter
            that the method's grid searches replaces the grid by that one point.
    """

    task_names: list[str]
    run: RunConfig = field(default_factory=RunConfig)
    methods: list[str] = field(default_factory=lambda: list(PAPER_METHODS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    lrs: list[float] = field(default_factory=lambda: [1e-3])
    temperatures: list[float] = field(default_factory=lambda: list(PAPER_TEMPERATURES))
    simplex_step: float = 0.1
    simplex_min_weight: float = 0.1
    search: str = "one_seed"
    delta_m_variant: str = "all_metrics"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.search not in SEARCH_MODES:
            raise ValueError(f"search must be one of {SEARCH_MODES}, got {self.search!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if any(isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 for seed in self.seeds):
            raise ValueError(f"seeds must be integers ≥ 0, got {self.seeds}")
        if not self.lrs:
            raise ValueError("lrs must list at least one learning rate")
        if not self.methods:
            raise ValueError("methods must list at least one method")
        # A repeated value would be the same runs twice over: almost certainly a typo in a list.
        for field_name, values in (("lrs", self.lrs), ("temperatures", self.temperatures), ("methods", self.methods)):
            repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
            if repeated:
                raise ValueError(f"{field_name} must not repeat a value, got {', '.join(repeated)} twice or more")
        for name in self.methods:
            method_registry.info(name)  # raises naming the unknown method
        for name in self.method_options:
            if name not in self.methods:
                raise ValueError(f"method_options given for {name!r}, which is not among the methods {self.methods}")
        if len(self.trained_tasks) < 2:
            raise ValueError(f"a multi-task benchmark needs at least two tasks, got {self.trained_tasks}")
        for name in self.methods:
            self.grid(name)  # a method refuses an empty or impossible grid here, before any run

    @property
    def trained_tasks(self) -> list[str]:
        return self.run.tasks or self.task_names

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace(
            num_tasks=len(self.trained_tasks),
            temperatures=tuple(self.temperatures),
            simplex_step=self.simplex_step,
            simplex_min_weight=self.simplex_min_weight,
        )

    def config(self, method: str, options: Mapping[str, Any], lr: float, seed: int, tasks: list[str]) -> RunConfig:
        return self.run.replace(tasks=list(tasks), method=method, method_options=dict(options), lr=lr, seed=seed)

    @property
    def grid_search_seeds(self) -> list[int]:
        """Seeds on which every grid point runs: all of them (``all_seeds``) or the first (``one_seed``)."""
        return list(self.seeds) if self.search == "all_seeds" else list(self.seeds[:1])

    def searched_seeds(self, num_points: int) -> list[int]:
        """Seeds of phase 1 for a grid of ``num_points`` points: a one-point grid runs on every seed at once."""
        return list(self.seeds) if num_points == 1 else self.grid_search_seeds

    def grid(self, method: str) -> list[dict[str, Any]]:
        """The method's hyper-parameter points (without the learning rate), with its fixed options merged in."""
        fixed = self.method_options.get(method, {})
        points = search_grid(method, self.search_space)
        if any(key in fixed for point in points for key in point):
            return [dict(fixed)]
        return [{**fixed, **point} for point in points]


@dataclass
class _Point:
    method: str
    options: dict[str, Any]
    lr: float

    def configs(self, spec: BenchSpec, seeds: Sequence[int]) -> list[RunConfig]:
        return [spec.config(self.method, self.options, self.lr, seed, spec.trained_tasks) for seed in seeds]


def stl_configs(spec: BenchSpec) -> dict[str, list[list[RunConfig]]]:
    """Per task, per learning rate, the STL runs over every seed (equal weighting of a single task)."""
    return {
        task: [[spec.config("ew", {}, lr, seed, [task]) for seed in spec.seeds] for lr in spec.lrs]
        for task in spec.trained_tasks
    }


def _mean_metrics(records: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {key: statistics.fmean(r[key] for r in records) for key in records[0]}


def stl_baseline(
    spec: BenchSpec, runs: Mapping[str, list[list[RunConfig]]], results: Mapping[str, RunResult]
) -> tuple[dict[str, float], dict[str, float]]:
    """Validation and test baselines: per task, the learning rate whose seed-averaged validation metrics are best.

    Each STL run's epoch is selected against its own first epoch (see :func:`select_epoch`). Learning rates are
    compared by Δm against the mean of all candidates' metrics, a scale-free reference that every candidate shares.
    A learning rate with a failed run (absent from ``results``) is no candidate; a task with no candidate left has
    no baseline (its metrics are missing from both mappings).
    """
    baseline_val: dict[str, float] = {}
    baseline_test: dict[str, float] = {}
    for per_lr in runs.values():
        candidates = []
        directions: dict[str, bool] = {}
        for configs in per_lr:
            if any(c.run_id() not in results for c in configs):
                continue
            finished = [results[c.run_id()] for c in configs]
            directions = finished[0].higher_is_better
            selected = [selected_record(r, None, spec.delta_m_variant) for r in finished]
            candidates.append((_mean_metrics([r.val for r in selected]), _mean_metrics([r.test for r in selected])))
        if not candidates:
            continue
        reference = defined_part(_mean_metrics([val for val, _ in candidates]))
        if reference:
            best = min(candidates, key=lambda c: rank_key(score(c[0], reference, directions, spec.delta_m_variant)))
        else:
            best = candidates[0]
        baseline_val.update(best[0])
        baseline_test.update(best[1])
    return baseline_val, baseline_test


def excluded_metrics(
    metric_keys: Sequence[str], baseline_val: Mapping[str, float], baseline_test: Mapping[str, float]
) -> dict[str, str]:
    """The metrics Δm must leave out, each with the reason: no STL baseline, or one of 0 (or < 0, non-finite)."""
    excluded: dict[str, str] = {}
    for split, baseline in (("validation", baseline_val), ("test", baseline_test)):
        for key, why in undefined_baselines(baseline).items():
            excluded.setdefault(key, f"the STL {split} baseline: {why}")
    for key in metric_keys:
        if key not in baseline_val or key not in baseline_test:
            excluded.setdefault(key, "no STL baseline: every single-task run of its task failed")
    return excluded


def _metric_keys(tasks: Sequence[str], baseline: Mapping[str, float], results: Mapping[str, RunResult]) -> list[str]:
    """Every ``"task/metric"`` of the trained tasks, in task order (from the baseline, or any run that has it)."""
    seen = list(baseline)
    for result in results.values():
        seen.extend(k for k in (result.epochs[0].test if result.epochs else {}) if k not in seen)
    return [key for task in tasks for key in seen if key.split("/", 1)[0] == task]


@dataclass(frozen=True)
class MethodPlan:
    """The runs one method of a benchmark will start.

    Attributes:
        method: registry name.
        points: grid points × learning rates.
        phase1_runs: runs of the grid search (every point on the searched seeds).
        phase2_runs: runs of the selected point on the remaining seeds.
    """

    method: str
    points: int
    phase1_runs: int
    phase2_runs: int

    @property
    def runs(self) -> int:
        return self.phase1_runs + self.phase2_runs


@dataclass(frozen=True)
class BenchPlan:
    """What :func:`run_bench` will start for a spec, counted without training (``taskbalance bench --dry-run``).

    Attributes:
        stl_runs: single-task baseline runs (every task × learning rate × seed, phase 1).
        methods: per method, its runs by phase.
        epochs: epochs of every run.
    """

    stl_runs: int
    methods: list[MethodPlan]
    epochs: int

    @property
    def phase1_runs(self) -> int:
        return self.stl_runs + sum(m.phase1_runs for m in self.methods)

    @property
    def phase2_runs(self) -> int:
        return sum(m.phase2_runs for m in self.methods)

    @property
    def runs(self) -> int:
        return self.phase1_runs + self.phase2_runs

    @property
    def run_epochs(self) -> int:
        return self.runs * self.epochs


def plan(spec: BenchSpec) -> BenchPlan:
    """Count the runs of each phase the way :func:`run_bench` starts them.

    Example:
        >>> spec = BenchSpec(task_names=["a", "b"], methods=["ew", "uwso"], temperatures=[1.0, 5.0])
        >>> p = plan(spec)  # STL: 2 tasks × 3 seeds; EW: 3 seeds; UW-SO: 2 points on seed 0, then seeds 1, 2
        >>> p.stl_runs, [(m.method, m.phase1_runs, m.phase2_runs) for m in p.methods], p.runs
        (6, [('ew', 3, 0), ('uwso', 2, 2)], 13)
    """
    methods = []
    for name in spec.methods:
        points = len(spec.grid(name)) * len(spec.lrs)
        searched = spec.searched_seeds(points)
        methods.append(MethodPlan(name, points, points * len(searched), len(spec.seeds) - len(searched)))
    stl_runs = len(spec.trained_tasks) * len(spec.lrs) * len(spec.seeds)
    return BenchPlan(stl_runs=stl_runs, methods=methods, epochs=spec.run.epochs)


def run_bench(spec: BenchSpec, run_many: RunMany, log: Callable[[str], None] = lambda _: None) -> BenchSummary:
    """Run the protocol and summarise it; ``run_many`` executes runs (local pool, Ray, or in-process).

    A run that ``run_many`` leaves out of its answer failed (e.g. it diverged): the protocol goes on without it. A
    grid point is scored over its finished seeds; a method none of whose runs of a phase finished is reported as
    failed (its ``failed_run_ids``), ranked last. Metrics without a usable STL baseline (every STL run of the task
    failed, or a baseline of 0) are left out of Δm and listed in ``excluded_metrics`` with the reason.
    """
    started = time.perf_counter()
    search_seeds = spec.grid_search_seeds
    points = {m: [_Point(m, o, lr) for o in spec.grid(m) for lr in spec.lrs] for m in spec.methods}
    stl = stl_configs(spec)

    phase1: list[RunConfig] = [c for per_lr in stl.values() for configs in per_lr for c in configs]
    for method_points in points.values():
        for point in method_points:
            phase1.extend(point.configs(spec, spec.searched_seeds(len(method_points))))
    log(f"phase 1: {len(phase1)} runs (STL baselines and grid search on seeds {search_seeds})")
    results: dict[str, RunResult] = dict(run_many(phase1))

    baseline_val, baseline_test = stl_baseline(spec, stl, results)
    metric_keys = _metric_keys(spec.trained_tasks, baseline_val, results)
    excluded = excluded_metrics(metric_keys, baseline_val, baseline_test)
    reference_val = {k: v for k, v in baseline_val.items() if k not in excluded}
    reference_test = {k: v for k, v in baseline_test.items() if k not in excluded}
    # Every finished run carries the directions of its tasks' metrics; together they cover the metric keys.
    known: dict[str, bool] = {}
    for result in results.values():
        known.update(result.higher_is_better)
    directions = {key: known[key] for key in metric_keys}

    def delta_m_of(metrics: Mapping[str, float], reference: Mapping[str, float]) -> float:
        return score(metrics, reference, directions, spec.delta_m_variant) if reference else math.nan

    def record(result: RunResult) -> EpochRecord:
        return selected_record(result, reference_val or None, spec.delta_m_variant)

    def point_score(point: _Point, seeds: Sequence[int]) -> float:
        finished = [results[c.run_id()] for c in point.configs(spec, seeds) if c.run_id() in results]
        if not finished:
            return math.nan
        return statistics.fmean(delta_m_of(record(r).val, reference_val) for r in finished)

    def finished_any(point: _Point, seeds: Sequence[int]) -> bool:
        return any(c.run_id() in results for c in point.configs(spec, seeds))

    selected: dict[str, _Point] = {}
    grids: dict[str, list[GridPoint]] = {}
    for method, method_points in points.items():
        seeds = spec.searched_seeds(len(method_points))
        scored = [(point_score(p, seeds), p) for p in method_points]
        grids[method] = [
            GridPoint(p.options, p.lr, s, [c.run_id() for c in p.configs(spec, seeds)]) for s, p in scored
        ]
        candidates = [(s, p) for s, p in scored if finished_any(p, seeds)] or scored
        selected[method] = min(candidates, key=lambda sp: rank_key(sp[0]))[1]

    phase2 = [
        c
        for method, p in selected.items()
        if any(finished_any(q, spec.seeds) for q in points[method])
        for c in p.configs(spec, spec.seeds)
        if c.run_id() not in results
    ]
    if phase2:
        log(f"phase 2: {len(phase2)} runs (selected points on seeds {spec.seeds[1:]})")
        results.update(run_many(phase2))

    handed_out_ids = list(dict.fromkeys(c.run_id() for c in phase1 + phase2))  # in order, each once
    handed_out = set(handed_out_ids)
    summaries = [
        _method_summary(method, point, grids[method], spec, results, record, lambda m: delta_m_of(m, reference_test),
                        handed_out)
        for method, point in selected.items()
    ]
    summaries.sort(key=lambda s: (not s.delta_m_per_seed, rank_key(s.delta_m_mean)))
    for rank, summary in enumerate(summaries, start=1):
        summary.rank = rank

    stl_ids = [c.run_id() for per_lr in stl.values() for configs in per_lr for c in configs]
    failed = [rid for rid in handed_out_ids if rid not in results]
    notes = [
        (
            "grids searched on every seed (the paper's protocol)"
            if spec.search == "all_seeds"
            else f"grids searched on seed {search_seeds[0]}; the selected point then run on seeds {spec.seeds}"
        ),
        f"STL baselines: {len(stl_ids)} runs, {sum(results[i].cpu_seconds for i in stl_ids if i in results):.0f} "
        "CPU-s",
        f"learning rates {spec.lrs}; {spec.run.epochs} epochs; Δm variant {spec.delta_m_variant}",
        template_line(spec.run, identity_only=True),
    ]
    notes += [f"Δm leaves out {key}: {why}" for key, why in excluded.items()]
    if failed:
        notes.append(f"{len(failed)} run(s) failed and are left out (errors in the store and in the report)")
    notes += diagnostics_notes([results[rid] for rid in handed_out_ids if rid in results])
    return BenchSummary(
        dataset=spec.run.dataset,
        model=spec.run.model,
        tasks=spec.trained_tasks,
        metric_keys=metric_keys,
        higher_is_better=directions,
        delta_m_variant=spec.delta_m_variant,
        baseline_val=baseline_val,
        baseline_test=baseline_test,
        methods=summaries,
        seeds=list(spec.seeds),
        notes=notes,
        wall_seconds=time.perf_counter() - started,
        excluded_metrics=excluded,
    )


# Set per run by the protocol, so not part of what a template fixes.
_PER_RUN_FIELDS = ("tasks", "method", "method_options", "lr", "seed")


def template_line(run: RunConfig, *, identity_only: bool = False) -> str:
    """The fields a run template sets away from RunConfig's defaults (those the protocol sets per run left out);
    ``identity_only`` also leaves out the fields that are not part of a run's identity (``device``, …), which a
    stored run may have been trained with otherwise.

    Example:
        >>> template_line(RunConfig(dataset="nyuv2", epochs=200, optimizer="sgd"))
        'every run: dataset=nyuv2, epochs=200, optimizer=sgd (other fields: RunConfig defaults)'
    """
    defaults = RunConfig().to_dict()
    left_out = _PER_RUN_FIELDS + (NOT_IDENTITY if identity_only else ())
    changed = [f"{k}={v}" for k, v in run.to_dict().items() if k not in left_out and v != defaults[k]]
    return f"every run: {', '.join(changed) or 'RunConfig defaults'} (other fields: RunConfig defaults)"


def diagnostics_notes(results: Sequence[RunResult]) -> list[str]:
    """One note per method and count of :meth:`~taskbalance.method.Method.diagnostics` that is above 0 in some run.

    Example:
        >>> from taskbalance.training import RunConfig
        >>> run = RunResult(RunConfig(method="nashmtl"), ["a"], {}, [], method_diagnostics={"solve_failures": 3.0})
        >>> diagnostics_notes([run, run])
        ['nashmtl: solve_failures 6 over 2 of 2 run(s) (Method.diagnostics; per run in the store)']
    """
    totals: dict[tuple[str, str], list[float]] = {}
    runs: dict[str, int] = {}
    for result in results:
        runs[result.config.method] = runs.get(result.config.method, 0) + 1
        for name, value in result.method_diagnostics.items():
            totals.setdefault((result.config.method, name), []).append(value)
    return [f"{method}: {name} {sum(values):g} over {sum(1 for v in values if v > 0)} of {runs[method]} run(s) "
            "(Method.diagnostics; per run in the store)"
            for (method, name), values in totals.items() if sum(values) > 0]


def trained_on_accelerator(result: RunResult) -> bool:
    """Whether the run trained on a GPU (its recorded device is not the CPU), so its compute is its wall time.

    Example:
        >>> from taskbalance.training import RunConfig
        >>> run = RunResult(RunConfig(), ["a"], {}, [], environment={"device": "cuda:0"})
        >>> trained_on_accelerator(run)
        True
    """
    device = str(result.environment.get("device", "cpu"))
    return device.split(":")[0] != "cpu"


def population_std(values: Sequence[float]) -> float:
    """The population standard deviation (ddof 0) of ``values``; NaN when there is none or one is not finite (a Δm
    without any usable baseline), where ``statistics.pstdev`` raises.

    Example:
        >>> population_std([1.0, 3.0]), population_std([float("nan"), 1.0])
        (1.0, nan)
    """
    if not values or not all(math.isfinite(v) for v in values):
        return math.nan
    return statistics.pstdev(values)


def _method_summary(
    method: str,
    point: _Point,
    grid: list[GridPoint],
    spec: BenchSpec,
    results: Mapping[str, RunResult],
    record: Callable[[RunResult], EpochRecord],
    test_delta_m: Callable[[Mapping[str, float]], float],
    started: set[str],
) -> MethodSummary:
    """A method's line of the table: its selected point's test Δm over the seeds whose runs finished.

    ``started``: the run ids handed to the executor; the runs and failures counted are among them (a method whose
    grid failed has no phase 2, whose runs are then neither spent nor failed).
    """
    seed_ids = [c.run_id() for c in point.configs(spec, spec.seeds)]
    seed_results = [results[rid] for rid in seed_ids if rid in results]
    records = [record(r) for r in seed_results]
    test_dm = [test_delta_m(r.test) for r in records]
    method_run_ids = ({rid for g in grid for rid in g.run_ids} | set(seed_ids)) & started
    # A method with no finished seed failed: every failed run of it is listed, else only the selected seeds'.
    failed = [rid for rid in (seed_ids if seed_results else sorted(method_run_ids))
              if rid not in results and rid in started]
    selected_point = next(g for g in grid if g.options == point.options and g.lr == point.lr)
    return MethodSummary(
        method=method,
        label=method_registry.label(method),
        selected=selected_point,
        delta_m_mean=statistics.fmean(test_dm) if test_dm else math.nan,
        delta_m_std=population_std(test_dm),
        delta_m_per_seed=test_dm,
        metrics_mean=_mean_metrics([r.test for r in records]) if records else {},
        metrics_std={k: population_std([r.test[k] for r in records]) for k in records[0].test} if records else {},
        rank=0,
        runs=len(method_run_ids),
        cpu_seconds=sum(results[rid].cpu_seconds for rid in method_run_ids if rid in results),
        grid=grid,
        seed_run_ids=[r.run_id for r in seed_results],
        failed_run_ids=failed,
        delta_m_seeds=[r.config.seed for r in seed_results],
        gpu_seconds=sum(results[rid].wall_seconds for rid in method_run_ids
                        if rid in results and trained_on_accelerator(results[rid])),
    )
