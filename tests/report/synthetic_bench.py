"""A synthetic 3-task benchmark (summary + the runs behind it) for the report tests; numbers chosen by hand."""

from __future__ import annotations

import math
import random

from taskbalance.protocol.summary import BenchSummary, GridPoint, MethodSummary
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult

TASKS = ["left", "right", "dense"]
KEYS = ["left/acc", "right/acc", "dense/l1"]
DIRECTIONS = {"left/acc": True, "right/acc": True, "dense/l1": False}
STEPS = 120


def simplex_points(step: int = 10, minimum: int = 1) -> list[list[float]]:
    """Weight vectors on the 3-simplex in tenths, each weight ≥ 0.1: 36 points."""
    return [[a / step, b / step, (step - a - b) / step] for a in range(minimum, step) for b in range(minimum, step)
            if step - a - b >= minimum]


def weights_over_steps(method: str, seed: int) -> list[list[float]]:
    rng = random.Random(seed * 31 + len(method))
    rows = []
    for step in range(1, STEPS + 1):
        if method == "ew":
            rows.append([1.0, 1.0, 1.0])
        elif method == "uwso":
            drift = step / STEPS
            raw = [0.25 + 0.05 * drift, 0.25 + 0.03 * drift + 0.01 * rng.random(), 0.5 - 0.08 * drift]
            rows.append([w / sum(raw) for w in raw])
        elif method == "rlw":
            z = [math.exp(rng.gauss(0, 1)) for _ in TASKS]
            rows.append([v / sum(z) for v in z])
        else:  # scalarization: its fixed weights
            rows.append([0.2, 0.2, 0.6])
    return rows


def make_run(method: str, seed: int, options: dict) -> RunResult:
    config = RunConfig(tasks=list(TASKS), method=method, method_options=options, seed=seed, epochs=2)
    weights = weights_over_steps(method, seed)
    records = [
        EpochRecord(e, dict.fromkeys(TASKS, 1.0 / e), {k: 0.5 for k in KEYS}, {k: 0.5 for k in KEYS},
                    {t: sum(r[i] for r in weights) / STEPS for i, t in enumerate(TASKS)}, 1e-3, 3.0)
        for e in (1, 2)
    ]
    return RunResult(config, list(TASKS), dict(DIRECTIONS), records, list(range(1, STEPS + 1)), weights,
                     [[1.0, 1.0, 0.2]] * STEPS, 80.0, 300.0, 6.0, 5.0)


def method(name: str, label: str, options: dict, rank: int, dm: list[float], metrics: list[float], runs: int,
           cpu: float, grid: list[GridPoint] | None = None) -> tuple[MethodSummary, list[RunResult]]:
    seed_runs = [make_run(name, seed, options) for seed in range(len(dm))]
    mean = sum(dm) / len(dm)
    std = math.sqrt(sum((v - mean) ** 2 for v in dm) / len(dm))
    point = GridPoint(options, 1e-3, mean + 0.5, [seed_runs[0].run_id])
    return (
        MethodSummary(name, label, point, mean, std, dm, dict(zip(KEYS, metrics, strict=True)),
                      dict.fromkeys(KEYS, 0.01), rank, runs, cpu, grid or [point], [r.run_id for r in seed_runs],
                      delta_m_seeds=list(range(len(dm)))),
        seed_runs,
    )


def build(store: RunStore) -> BenchSummary:
    """Four methods, ranks 1–4: UW-SO −3.0 ± 1.0, Scalarization −1.0 ± 0.5, EW +2.0 ± 0.0, RLW +4.5 ± 1.5."""
    grid = [GridPoint({"weights": w}, 1e-3, 10 * abs(w[2] - 0.6) + 5 * abs(w[0] - 0.2) - 1.0, [f"g{i}"])
            for i, w in enumerate(simplex_points())]
    entries = [
        method("uwso", "UW-SO", {"temperature": 5.0}, 1, [-4.0, -2.0], [0.81, 0.79, 0.1234], 6, 120.0),
        method("scalarization", "Scalarization", {"weights": [0.2, 0.2, 0.6]}, 2, [-1.5, -0.5], [0.8, 0.78, 0.13],
               37, 740.0, grid),
        method("ew", "EW", {}, 3, [2.0, 2.0], [0.77, 0.76, 0.14], 2, 41.5),
        method("rlw", "RLW", {}, 4, [3.0, 6.0], [0.75, 0.74, 0.151], 2, 39.4),
    ]
    for _, runs in entries:
        for run in runs:
            store.save(run)
    summary = BenchSummary("multifashion", "multilenet", list(TASKS), list(KEYS), dict(DIRECTIONS), "all_metrics",
                           {"left/acc": 0.8, "right/acc": 0.78, "dense/l1": 0.13},
                           {"left/acc": 0.79, "right/acc": 0.77, "dense/l1": 0.135},
                           [m for m, _ in entries], [0, 1], ["grids searched on seed 0"], 600.0)
    store.save_summary("bench", summary.to_dict())
    return summary
