"""The converged reproduction of Kirchdorfer et al. 2024 (arXiv 2408.07985) on the embedded MultiFashion dataset.

The study is the ``reproduction`` preset (``taskbalance bench --preset reproduction``: 50 epochs, the rate halved at
epoch 30, the LR grid {1e-4, 1e-3, 1e-2}, the paper's temperature grid, 3 seeds, grids searched on seed 0) run in
parts, one per claim, into one resumable store. Every part is a benchmark of the library's protocol (or, for the
weight-decay grid, plain runs scored against the same single-task baselines); parts share runs through the store,
e.g. every multilenet part reuses the same single-task baselines.

    python scripts/reproduction.py plan                      # runs and estimated wall time per part
    nice -n 19 python scripts/reproduction.py run            # every part, in order; resumes where it stopped
    nice -n 19 python scripts/reproduction.py run --parts multilenet,uw-init-2
    python scripts/reproduction.py run --device cuda --runs-per-device 8 --data-on-device   # on a GPU box
    python scripts/reproduction.py status                    # how far each part has come, the wall time left
    python scripts/reproduction.py snapshot                  # copy the working store to the committed one
    python scripts/reproduction.py report                    # docs/results/reproduction/STUDY.md and its plots
    python scripts/reproduction.py --epochs 1 --lrs 1e-3 ... run   # a tiny study (the tests)

The working store is ``runs/reproduction/results.sqlite`` (with per-run checkpoints beside it, so that a run
interrupted at any moment resumes at its last epoch); ``snapshot`` copies it, consistently, to
``docs/results/reproduction/study/results.sqlite``, which is committed. ``run`` starts from the committed copy when
there is no working store yet, so a fresh clone continues the study where the last snapshot left it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from taskbalance.data import multifashion
from taskbalance.execution import RunsFailedError, run_configs
from taskbalance.execution.placement import GpuPlacement, visible_gpus
from taskbalance.protocol.bench import BenchSpec, plan, run_bench, stl_configs
from taskbalance.protocol.presets import FAST_TEMPERATURES, PRESETS
from taskbalance.protocol.summary import BenchSummary
from taskbalance.report import read_summary
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig
from taskbalance.training.devices import DeviceError, resolve_device
from taskbalance.training.result import RunResult

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "runs" / "reproduction"
RESULTS = ROOT / "docs" / "results" / "reproduction"
COMMITTED = RESULTS / "study" / "results.sqlite"
DEFAULT_BENCH_CSV = ROOT / "docs" / "results" / "results.csv"

LOSS_WEIGHTINGS = ("ew", "uw", "uwo", "uwso", "dwa", "rlw", "imtll", "gls")
"""The paper's loss weightings; Scalarization, the brute-force reference, is a part of its own."""

UW_INITS = (-2.0, 2.0)
"""Initial log-variances of UW next to its default 0 (σ² = 1): weights e^{±2} ≈ 7.4 and 0.14 at the start."""

WEIGHT_DECAYS = (0.0, 1e-4, 1e-3)
"""The weight-decay grid next to the preset's 1e-5 (claim 4)."""

WD_METHODS = ("ew", "uwso")
LARGER_MODEL = "small_cnn"
LARGER_MODEL_OPTIONS: dict[str, Any] = {"channels_last": True}
"""The larger model's encoder runs in channels-last format: a training step in 0.72× the default format's time on
this CPU (benchmarks/memory_format.py). No multilenet part uses it, so their runs stay those already stored."""
EPOCH_SECONDS = {"multilenet": 5.2, LARGER_MODEL: 12.2}
"""Wall seconds of one EW epoch on one CPU thread, evaluation included: multilenet measured alone; small_cnn
estimated: ≈ 17 s in the default format (26 s measured while two other runs shared the 2 cores, about 2/3 of a
core) × 0.72 for channels-last. ``status`` replaces these by the measured mean run time once runs have finished."""
LARGER_MODEL_GRID: dict[str, Any] = {"lrs": [1e-3, 1e-2], "temperatures": list(FAST_TEMPERATURES)}
"""Cut to fit: a small_cnn epoch costs about 3× a multilenet epoch (measured ≈ 17 s on one thread), so its part
searches two learning rates (1e-4 leaves even multilenet under-trained in 50 epochs) and five temperatures."""

# Cheapest first, so that the claims get their numbers in that order: the weight-decay grid (18 runs), then
# Scalarization (110 multilenet runs), then the larger model (58 runs at about 3× the cost each).
PART_NAMES = ("multilenet", "uw-init-2", "uw-init+2", "weight-decay", "scalarization", LARGER_MODEL)


@dataclass(frozen=True)
class BenchPart:
    """One benchmark of the study, saved in the store as the summary ``name``."""

    name: str
    claim: str
    spec: BenchSpec


@dataclass(frozen=True)
class PartRuns:
    """The runs of one part of the study: phase 1 by id, phase 2 (the selected point on the other seeds) by count."""

    name: str
    claim: str
    model: str
    phase1_ids: set[str]
    phase2_runs: int


@dataclass
class Study:
    """The study's parts and where its store lives.

    ``changes`` override fields of the preset's spec (e.g. ``lrs``, ``seeds``) and ``run_changes`` fields of its run
    template (e.g. ``epochs``): the defaults are the study itself; the tests run it at a tiny scale.
    """

    work: Path = WORK
    committed: Path = COMMITTED
    changes: dict[str, Any] = field(default_factory=dict)
    run_changes: dict[str, Any] = field(default_factory=dict)
    placement: GpuPlacement | None = None

    def spec(self, run_changes: dict[str, Any] | None = None, **changes: Any) -> BenchSpec:
        return PRESETS["reproduction"].spec(
            list(multifashion.TASK_NAMES), run_changes={**self.run_changes, **(run_changes or {})},
            **{**self.changes, **changes},
        )

    def bench_parts(self) -> dict[str, BenchPart]:
        """The study's benchmarks by name (every multilenet part reuses the same STL baselines)."""
        parts = [BenchPart("multilenet", "claim 1: UW-SO against the paper's loss weightings",
                           self.spec(methods=list(LOSS_WEIGHTINGS)))]
        for init in UW_INITS:
            parts.append(BenchPart(f"uw-init{init:+g}", "UW's sensitivity to its initial log-variance",
                                   self.spec(methods=["uw"], method_options={"uw": {"init": init}})))
        parts.append(BenchPart(LARGER_MODEL, "claim 3: a larger network (small_cnn, 14x the shared parameters)",
                               self.spec(methods=list(LOSS_WEIGHTINGS),
                                         run_changes={"model": LARGER_MODEL, "model_options": LARGER_MODEL_OPTIONS},
                                         **{k: v for k, v in LARGER_MODEL_GRID.items() if k not in self.changes})))
        parts.append(BenchPart("scalarization", "claim 2: UW-SO against brute-force Scalarization",
                               self.spec(methods=["scalarization"])))
        return {part.name: part for part in parts}

    def weight_decay_configs(self, uwso_temperature: float) -> list[RunConfig]:
        """Claim 4: EW and UW-SO (at the temperature the multilenet part selected) over LR × weight decay, on the
        first seed; the preset's own weight decay is in the multilenet part already."""
        spec = self.spec()
        configs = []
        for weight_decay in (*WEIGHT_DECAYS, spec.run.weight_decay):
            for method in WD_METHODS:
                options = {"temperature": uwso_temperature} if method == "uwso" else {}
                for lr in spec.lrs:
                    config = spec.config(method, options, lr, spec.seeds[0], spec.trained_tasks)
                    configs.append(config.replace(weight_decay=weight_decay))
        return configs

    def open_working_store(self) -> RunStore:
        self.work.mkdir(parents=True, exist_ok=True)
        database = self.work / "results.sqlite"
        if not database.exists() and self.committed.exists():
            shutil.copyfile(self.committed, database)
            print(f"continuing from the committed store {self.committed}")
        return RunStore(database)

    def run(self, names: list[str], workers: int) -> None:
        parts = self.bench_parts()
        with self.open_working_store() as store:

            def run_many(configs: list[RunConfig]) -> dict[str, RunResult]:
                try:
                    return run_configs(configs, store=store, workers=workers, checkpoint_dir=self.work / "checkpoints",
                                       progress=print, placement=self.placement)
                except RunsFailedError as error:  # a diverged run is a failed run; the part goes on without it
                    print(error)
                    return error.results

            for name in names:
                if name == "weight-decay":
                    configs = self.weight_decay_configs(selected_temperature(store))
                    print(f"== weight-decay: {len(configs)} runs (claim 4)")
                    run_many(configs)
                    continue
                part = parts[name]
                print(f"== {part.name} ({part.claim})")
                spec = part.spec
                summary = run_bench(spec, run_many, log=print)
                for _ in range(MAX_EXTENSIONS):
                    wider = extended_temperatures(spec.temperatures, selected_options(summary, "uwso"))
                    if wider is None:
                        break
                    print(f"UW-SO's selected T sits at an edge of {spec.temperatures}: extending to {wider}")
                    spec = replace(spec, temperatures=wider)
                    summary = run_bench(spec, run_many, log=print)  # reruns nothing that already finished
                store.save_summary(part.name, summary.to_dict())

    def part_runs(self, uwso_temperature: float | None) -> list[PartRuns]:
        """Every part's runs in study order: phase-1 run ids and the phase-2 count (phase 2's ids depend on phase
        1's selection). The weight-decay part's UW-SO runs need the selected temperature; before it is known they
        are listed at T = 1 (the same number of runs)."""
        parts = self.bench_parts()
        listed = []
        for name in PART_NAMES:
            if name == "weight-decay":
                configs = self.weight_decay_configs(1.0 if uwso_temperature is None else uwso_temperature)
                listed.append(PartRuns(name, "claim 4: weight decay against learning rate", self.spec().run.model,
                                       {c.run_id() for c in configs}, 0))
            else:
                spec = parts[name].spec
                listed.append(PartRuns(name, parts[name].claim, spec.run.model, _phase1_run_ids(spec),
                                       plan(spec).phase2_runs))
        return listed

    def show_plan(self, workers: int) -> None:
        seen: set[str] = set()
        total, hours = 0, 0.0
        epochs = self.spec().run.epochs
        for part in self.part_runs(None):
            # Phase 2's runs are never shared between parts; phase 1's are (the STL baselines).
            new = len(part.phase1_ids - seen) + part.phase2_runs
            seen |= part.phase1_ids
            total += new
            part_hours = new * epochs * EPOCH_SECONDS[part.model] / 3600
            hours += part_hours
            print(f"{part.name:<14} {len(part.phase1_ids) + part.phase2_runs:4d} runs, {new:4d} new, "
                  f"≈ {part_hours:4.1f} CPU-thread-h   ({part.claim})")
        print(f"total {total} runs × {epochs} epochs ≈ {hours:.1f} CPU-thread-hours ≈ {hours / workers:.1f} h wall "
              f"with {workers} workers (seconds per epoch: {EPOCH_SECONDS})")

    def show_status(self, workers: int = 2) -> None:
        """Per part: its phase-1 runs finished in the working (else the committed) store, and its summary; then
        the runs still to train and their wall time, from the mean time of the finished runs of each model."""
        database = self.work / "results.sqlite"
        if not database.exists():
            database = self.committed
        if not database.exists():
            print("no store yet: nothing has run")
            return
        with RunStore(database) as store:
            statuses = store.statuses()
            finished = {rid for rid, status in statuses.items() if status == "finished"}
            failed = sum(1 for status in statuses.values() if status == "failed")
            summaries = set(store.summary_names())
            temperature = uwso_temperature(store)
            measured = measured_run_seconds(store)
        epochs = self.spec().run.epochs
        seen: set[str] = set()
        to_train: dict[str, int] = {}
        for part in self.part_runs(temperature):
            ids, phase2_left = part.phase1_ids, part.phase2_runs
            if part.name == "weight-decay":
                print(f"{part.name:<14} " + ("its UW-SO runs wait for the multilenet part's temperature"
                                             if temperature is None else
                                             f"{len(ids & finished)} / {len(ids)} runs finished (UW-SO at T = "
                                             f"{temperature:g})"))
            else:
                # Phase 2's run ids are known only once phase 1 has selected: counted, at most, until the summary.
                phase2_left = 0 if part.name in summaries else phase2_left
                state = "summary saved" if part.name in summaries else "no summary yet"
                print(f"{part.name:<14} phase 1: {len(ids & finished):4d} / {len(ids):4d} runs finished; {state}")
            to_train[part.model] = to_train.get(part.model, 0) + len(ids - finished - seen) + phase2_left
            seen |= ids
        print(f"{database}: {len(finished)} runs finished, {failed} failed")
        seconds, basis = 0.0, []
        for model, count in to_train.items():
            if model in measured:
                mean, runs = measured[model]
                basis.append(f"{model} {mean:.0f} s per run, the mean of {runs} finished")
            else:
                mean = epochs * EPOCH_SECONDS[model]
                basis.append(f"{model} {mean:.0f} s per run, estimated from {EPOCH_SECONDS[model]:g} s per epoch")
            seconds += count * mean
        left = sum(to_train.values())
        print(f"still to train: at most {left} runs ({', '.join(f'{m} {n}' for m, n in to_train.items())}) "
              f"≈ {seconds / 3600 / workers:.1f} h wall with {workers} workers ({'; '.join(basis)})")

    def snapshot(self) -> None:
        source = self.work / "results.sqlite"
        if not source.exists():
            raise SystemExit(f"no working store at {source}")
        self.committed.parent.mkdir(parents=True, exist_ok=True)
        partial = self.committed.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(source)) as reader, closing(sqlite3.connect(partial)) as writer:
            reader.backup(writer)  # a consistent copy even while the study writes to the store
        partial.replace(self.committed)
        print(f"{self.committed}: {self.committed.stat().st_size / 1e6:.1f} MB")


MAX_EXTENSIONS = 3
EDGE_FACTORS = (1.5, 2.5)
"""An edge temperature T is extended by T·1.5 and T·2.5 (upward) or T/1.5 and T/2.5 (downward): 20 → 30, 50."""


def selected_options(summary: BenchSummary, method: str) -> dict[str, Any] | None:
    chosen = next((m for m in summary.methods if m.method == method and not m.failed), None)
    return None if chosen is None else chosen.selected.options


def extended_temperatures(grid: Sequence[float], selected: Mapping[str, Any] | None) -> list[float] | None:
    """The temperature grid widened past the selected T when T sits at its edge (None: no extension needed).

    The paper's grid is searched, so an edge selection says the best T may lie outside it.

    Example:
        >>> extended_temperatures([1.0, 5.0, 20.0], {"temperature": 20.0})
        [1.0, 5.0, 20.0, 30.0, 50.0]
        >>> extended_temperatures([1.0, 5.0, 20.0], {"temperature": 5.0}) is None
        True
    """
    if selected is None or "temperature" not in selected or len(grid) < 2:
        return None
    chosen = float(selected["temperature"])
    if chosen == max(grid):
        extra = [chosen * f for f in EDGE_FACTORS]
    elif chosen == min(grid):
        extra = [round(chosen / f, 6) for f in EDGE_FACTORS]
    else:
        return None
    return sorted({*grid, *extra})


def uwso_temperature(store: RunStore) -> float | None:
    """UW-SO's temperature selected by the multilenet part, or None before that part has its summary."""
    summary = read_summary(store, "multilenet")
    options = None if summary is None else selected_options(summary, "uwso")
    return None if options is None else float(options["temperature"])


def selected_temperature(store: RunStore) -> float:
    temperature = uwso_temperature(store)
    if temperature is None:
        raise SystemExit("the weight-decay part needs the multilenet part's selected UW-SO temperature: run it first")
    return temperature


def measured_run_seconds(store: RunStore) -> dict[str, tuple[float, int]]:
    """model → (mean wall seconds, count) of the store's finished runs of that model."""
    times: dict[str, list[float]] = {}
    for config, wall in store.connection.execute(
        "SELECT config, wall_seconds FROM runs WHERE status = 'finished' AND wall_seconds IS NOT NULL"
    ):
        times.setdefault(json.loads(config)["model"], []).append(float(wall))
    return {model: (sum(walls) / len(walls), len(walls)) for model, walls in times.items()}


def _phase1_run_ids(spec: BenchSpec) -> set[str]:
    """The runs a part starts before any selection: its STL baselines and its grid search."""
    ids = {c.run_id() for per_lr in stl_configs(spec).values() for seeds in per_lr for c in seeds}
    for method in spec.methods:
        points = spec.grid(method)
        seeds = spec.searched_seeds(len(points) * len(spec.lrs))
        for options in points:
            for lr in spec.lrs:
                ids |= {spec.config(method, options, lr, s, spec.trained_tasks).run_id() for s in seeds}
    return ids


def _csv(kind: type, text: str) -> list[Any]:
    return [kind(part) for part in text.split(",") if part.strip()]


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=WORK, help="working store and checkpoints [runs/reproduction]")
    parser.add_argument("--committed", type=Path, default=COMMITTED, help="the committed store")
    parser.add_argument("--report-dir", type=Path, default=RESULTS, help="where `report` writes STUDY.md")
    parser.add_argument("--default-csv", type=Path, default=DEFAULT_BENCH_CSV,
                        help="results.csv of the default benchmark, for Kendall's τ")
    scale = parser.add_argument_group("scale (for tests; the defaults are the study)")
    scale.add_argument("--epochs", type=int)
    scale.add_argument("--max-steps", type=int)
    scale.add_argument("--lrs", help="comma-separated")
    scale.add_argument("--seeds", help="comma-separated")
    scale.add_argument("--temperatures", help="comma-separated")
    scale.add_argument("--simplex-step", type=float)
    scale.add_argument("--num-train", type=int, help="MultiFashion training samples (validation and test: a fifth)")
    commands = parser.add_subparsers(dest="command", required=True)
    plan_parser = commands.add_parser("plan", help="runs and estimated wall time per part")
    plan_parser.add_argument("--workers", type=int, default=2)
    run_parser = commands.add_parser("run", help="run parts of the study (resumes)")
    run_parser.add_argument("--parts", default=",".join(PART_NAMES), help=f"comma-separated, of {list(PART_NAMES)}")
    run_parser.add_argument("--workers", type=int, default=2, help="parallel runs on the CPU")
    run_parser.add_argument("--device", default="auto",
                            help="auto (CUDA, else MPS, else CPU), cpu, cuda, ...: not part of a run's identity, so "
                                 "GPU runs land in the same store [auto]")
    run_parser.add_argument("--runs-per-device", type=int, default=4, help="runs sharing one GPU at a time [4]")
    run_parser.add_argument("--data-on-device", action="store_true",
                            help="keep MultiFashion's splits on the device and batch there (same batches; not part "
                                 "of a run's identity): for a GPU, where per-batch host work dominates these models")
    status_parser = commands.add_parser("status", help="how far each part has come, and the wall time left")
    status_parser.add_argument("--workers", type=int, default=2)
    commands.add_parser("snapshot", help="copy the working store to the committed one")
    commands.add_parser("report", help="write the study's report from the committed store")
    return parser


def study_of(args: argparse.Namespace) -> Study:
    """The study at the scale and paths the arguments name."""
    changes: dict[str, Any] = {}
    run_changes: dict[str, Any] = {}
    for name, kind, text in (("lrs", float, args.lrs), ("seeds", int, args.seeds),
                             ("temperatures", float, args.temperatures)):
        if text is not None:
            changes[name] = _csv(kind, text)
    if args.simplex_step is not None:
        changes.update(simplex_step=args.simplex_step, simplex_min_weight=args.simplex_step)
    if args.epochs is not None:
        run_changes["epochs"] = args.epochs
    if args.max_steps is not None:
        run_changes["max_steps_per_epoch"] = args.max_steps
    if args.num_train is not None:
        run_changes["dataset_options"] = {"num_train": args.num_train, "num_val": max(1, args.num_train // 5),
                                          "num_test": max(1, args.num_train // 5)}
    placement = None
    if args.command == "run":
        run_changes["device"] = args.device
        if args.data_on_device:
            run_changes["data_on_device"] = True
        try:
            if resolve_device(args.device).type == "cuda":
                placement = GpuPlacement(visible_gpus(), args.runs_per_device)
        except DeviceError as error:
            raise SystemExit(f"--device: {error}") from None
    return Study(work=args.work, committed=args.committed, changes=changes, run_changes=run_changes,
                 placement=placement)


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser()
    args = parser.parse_args(argv)
    study = study_of(args)
    torch.set_num_threads(1)
    if args.command == "run":
        names = [name.strip() for name in args.parts.split(",") if name.strip()]
        unknown = [name for name in names if name not in PART_NAMES]
        if unknown:
            parser.error(f"--parts: unknown part(s) {unknown}; the parts are {list(PART_NAMES)}")
        study.run(names, args.workers)
    elif args.command == "plan":
        study.show_plan(args.workers)
    elif args.command == "status":
        study.show_status(args.workers)
    elif args.command == "snapshot":
        study.snapshot()
    else:
        from reproduction_report import write_study_report  # scripts/, beside this file

        print(write_study_report(study, args.report_dir, args.default_csv))


if __name__ == "__main__":
    main()
