"""``write_report``: report.md, results.csv and the plots of a benchmark summary kept in the results store.

Example (needs the files on disk, so it is not run as a doctest)::

    from pathlib import Path
    from taskbalance.report import write_report
    from taskbalance.store import RunStore
    with RunStore("runs/bench/results.sqlite") as store:
        write_report(store, Path("runs/bench"))
    # → PosixPath('runs/bench/report.md')
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from taskbalance.protocol.summary import BenchSummary, MethodSummary
from taskbalance.report.plots import plot_compute, plot_delta_m, plot_simplex, plot_weights
from taskbalance.report.tables import (
    excluded_note,
    format_delta_m,
    format_value,
    markdown_table,
    metric_header,
    used_gpu,
    write_results_csv,
)
from taskbalance.store.run_store import RunStore
from taskbalance.training.result import RunResult

DELTA_M_DEFINITION = (
    "Δm = (1/N)·Σᵢ (−1)^hᵢ·(Mᵢ − Bᵢ)/Bᵢ·100 over the N metrics, B = the single-task (STL) baseline, hᵢ = 1 when "
    "higher is better (Maninis et al. 2019; Kirchdorfer et al. 2024). Lower is better; 0 matches STL."
)
PER_TASK_DEFINITION = (
    "Δm (per-task variant) = (1/T)·Σₜ of each task's mean over its metrics of (−1)^hᵢ·(Mᵢ − Bᵢ)/Bᵢ·100, "
    "B = the single-task (STL) baseline, hᵢ = 1 when higher is better: every task counts once, however many "
    "metrics it has. Lower is better; 0 matches STL."
)


def mean_weights(runs: list[RunResult]) -> list[float] | None:
    """Mean task weights over all logged steps of the runs (per-epoch means when no steps were logged)."""
    rows = []
    for run in runs:
        if run.step_weights:
            rows.extend(run.step_weights)
        else:
            rows.extend([r.mean_weights[t] for t in run.tasks] for r in run.epochs if r.mean_weights)
    if not rows:
        return None
    return [float(v) for v in np.nanmean(np.asarray(rows, dtype=float), axis=0)]


def per_seed_text(method: MethodSummary) -> str:
    """Each seed's test Δm, named by its seed when the summary recorded them (``seed 0 +2.10, seed 2 +1.95``), so a
    missing seed shows which one is missing.

    Example:
        >>> from taskbalance.protocol.summary import GridPoint
        >>> ew = MethodSummary("ew", "EW", GridPoint({}, 1e-3, 1.0, []), 2.5, 0.5, [2.0, 3.0], {}, {}, 1, 2, 30.0,
        ...                    delta_m_seeds=[0, 2])
        >>> per_seed_text(ew)
        'seed 0 +2.00, seed 2 +3.00'
    """
    values = method.delta_m_per_seed
    if len(method.delta_m_seeds) != len(values):  # a summary written before the seeds were recorded
        return ", ".join(f"{v:+.2f}" for v in values)
    return ", ".join(f"seed {seed} {v:+.2f}" for seed, v in zip(method.delta_m_seeds, values, strict=True))


def _options(method: MethodSummary) -> str:
    return json.dumps(method.selected.options, sort_keys=True) if method.selected.options else "—"


def _report_text(summary: BenchSummary, store: RunStore, plots: dict[str, str]) -> str:
    minutes = summary.wall_seconds / 60
    lines = [
        f"# taskbalance benchmark: {summary.dataset} / {summary.model}",
        "",
        f"Tasks: {', '.join(summary.tasks)} · seeds: {summary.seeds} · Δm variant: `{summary.delta_m_variant}` · "
        f"wall time of the `bench` call that wrote this summary {minutes:.1f} min (runs it found finished in the "
        "store took none)",
        "",
        "## Test results at the configuration selected by validation Δm",
        "",
        markdown_table(summary),
        (PER_TASK_DEFINITION if summary.delta_m_variant == "per_task" else DELTA_M_DEFINITION)
        + " Metric columns are test means over the seeds (↑ higher / ↓ lower is better); runs and "
        "CPU-s count the grid search and every seed"
        + (" (CPU-s is the host processes' CPU time; GPU-s the wall time of the runs that trained on a GPU)."
           if used_gpu(summary) else "."),
        "",
        *([excluded_note(summary), ""] if summary.excluded_metrics else []),
        "## Selected configurations",
        "",
        "| method | options | lr | validation Δm | test Δm per seed |",
        "|---|---|---:|---:|---|",
    ]
    for method in sorted(summary.methods, key=lambda m: m.rank):
        if method.failed:  # no finished run of its grid: nothing was selected
            lines.append(f"| {method.label} | — | — | — | {format_delta_m(method)} |")
            continue
        per_seed = per_seed_text(method)
        lines.append(f"| {method.label} | `{_options(method)}` | {method.selected.lr:g} | "
                     f"{method.selected.val_delta_m:+.2f} | {per_seed} |")
    lines += ["", "## Single-task baselines", "", "| metric | validation | test |", "|---|---:|---:|"]
    for key in summary.metric_keys:
        left_out = " (left out of Δm)" if key in summary.excluded_metrics else ""
        lines.append(f"| {metric_header(summary, key)}{left_out} | "
                     f"{format_value(summary.baseline_val.get(key, math.nan))} | "
                     f"{format_value(summary.baseline_test.get(key, math.nan))} |")
    lines += ["", "## Plots", ""]
    captions = {
        "delta_m": "Test Δm per method (bars: mean, whiskers: ± std, dots: seeds).",
        "compute": "Δm against the compute spent on each method (training runs and CPU-seconds).",
        "weights": "Task weights over training of each method's selected configuration (first seed).",
        "simplex": "Scalarization's grid on the simplex, coloured by validation Δm; the star is the selected "
                   "point, the diamond UW-SO's mean weights (when UW-SO ran), the cross equal weighting.",
    }
    for name, file_name in plots.items():
        lines += [f"![{name}]({file_name})", "", captions[name], ""]
    if summary.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in summary.notes] + [""]
    statuses = store.statuses()
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in ("finished", "running", "failed")}
    lines += ["## Runs in the store", "",
              f"{counts['finished']} finished, {counts['running']} unfinished, {counts['failed']} failed "
              f"(`{store.path.name}`)."]
    failed = [rid for rid, status in statuses.items() if status == "failed"]
    for run_id in failed:
        error = (store.error(run_id) or "").strip().splitlines()
        lines.append(f"- failed `{run_id}`: {error[-1] if error else 'no error recorded'}")
    return "\n".join(lines) + "\n"


def read_summary(store: RunStore, name: str = "bench") -> BenchSummary | None:
    """The benchmark summary the store keeps under ``name`` (None when there is none)."""
    data = store.load_summary(name)
    return None if data is None else BenchSummary.from_dict(data)



def weight_grid_method(summary: BenchSummary) -> MethodSummary | None:
    """The method whose search grid spans task-weight vectors (Scalarization's simplex), if one was benchmarked.

    Recognised from the grid itself (several points, each with one ``weights`` entry per task), so the report does
    not depend on method names.
    """
    for method in summary.methods:
        points = [point.options.get("weights") for point in method.grid]
        if len(points) > 1 and all(isinstance(w, list) and len(w) == len(summary.tasks) for w in points):
            return method
    return None


def write_report(store: RunStore, out_dir: Path, summary_name: str = "bench", marked_method: str = "uwso") -> Path:
    """Write ``report.md``, ``results.csv`` and the PNG plots to ``out_dir``; return the path of report.md.

    Plots: ``delta_m.png``, ``compute.png``, ``weights.png`` and, for 3 tasks with a weight grid benchmarked
    (Scalarization), ``simplex.png`` (see :mod:`taskbalance.report.plots`), on which the mean weights of
    ``marked_method`` (default UW-SO, the library's featured method) are marked when it was benchmarked.

    Raises:
        ValueError: the store holds no summary of that name (the message lists the names it holds).
    """
    summary = read_summary(store, summary_name)
    if summary is None:
        raise ValueError(
            f"{store.path} holds no benchmark summary named {summary_name!r} "
            f"(it holds {store.summary_names() or 'none'}): run `taskbalance bench` first"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results_csv(summary, out_dir / "results.csv")

    needed = {rid for m in summary.methods for rid in m.seed_run_ids}
    runs = {rid: run for rid in needed if (run := store.get(rid)) is not None}
    plots = {
        "delta_m": plot_delta_m(summary, out_dir / "delta_m.png").name,
        "compute": plot_compute(summary, out_dir / "compute.png").name,
        "weights": plot_weights(summary, runs, out_dir / "weights.png").name,
    }
    simplex_method = weight_grid_method(summary)
    if len(summary.tasks) == 3 and simplex_method is not None:
        by_method = {m.method: m for m in summary.methods}
        marked = by_method.get(marked_method)
        marked_weights = None
        if marked is not None:
            marked_weights = mean_weights([runs[rid] for rid in marked.seed_run_ids if rid in runs])
        plots["simplex"] = plot_simplex(summary, simplex_method, marked_weights, out_dir / "simplex.png",
                                        marked_label=marked.label if marked is not None else "").name
    report = out_dir / "report.md"
    report.write_text(_report_text(summary, store, plots))
    return report
