"""The benchmark table — rank, method, test Δm mean ± std, each metric's test mean, runs, CPU-seconds and, when some
run trained on a GPU, GPU-seconds — for the terminal (rich), Markdown and CSV.

Δm (Maninis et al. 2019; Kirchdorfer et al. 2024, Sec. 5): Δm = (1/N)·Σ_i (−1)^{h_i}·(M_i − B_i)/B_i·100 over the N
metrics, B = the single-task baseline, h_i = 1 when higher is better; lower is better.

Example:
    >>> from taskbalance.protocol.summary import BenchSummary, GridPoint, MethodSummary
    >>> point = GridPoint({}, 1e-3, 1.0, ["r0"])
    >>> ew = MethodSummary("ew", "EW", point, 2.5, 0.5, [2.0, 3.0], {"a/acc": 0.75}, {"a/acc": 0.01}, 1, 2, 30.0)
    >>> summary = BenchSummary("d", "m", ["a"], ["a/acc"], {"a/acc": True}, "all_metrics", {}, {}, [ew], [0, 1])
    >>> print(markdown_table(summary).splitlines()[2])
    | 1 | EW | +2.50 ± 0.50 | 0.7500 | 2 | 30 |
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from rich.table import Table

from taskbalance.protocol.summary import BenchSummary, MethodSummary


def format_value(value: float) -> str:
    """A metric value with 4 significant digits, trailing zeros kept so columns align (no exponent below 10⁴)."""
    if math.isnan(value):
        return "nan"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:#.4g}"


def format_delta_m(method: MethodSummary, seeds: int | None = None) -> str:
    """``mean ± std``, or ``failed (N runs)`` for a method none of whose selected runs finished; with ``seeds`` (the
    benchmark's number of seeds) a mean over fewer seeds says over how many, e.g. ``+2.16 ± 0.00 (1 of 3 seeds)``."""
    if method.failed:
        return f"failed ({len(method.failed_run_ids)} runs)"
    text = f"{method.delta_m_mean:+.2f} ± {method.delta_m_std:.2f}"
    finished = len(method.delta_m_per_seed)
    return f"{text} ({finished} of {seeds} seeds)" if seeds is not None and finished < seeds else text


def excluded_note(summary: BenchSummary) -> str:
    """One sentence naming the metrics Δm leaves out and why ('' when it covers every metric)."""
    if not summary.excluded_metrics:
        return ""
    reasons = "; ".join(f"{key}: {why}" for key, why in summary.excluded_metrics.items())
    return f"Δm leaves out {', '.join(summary.excluded_metrics)} ({reasons})."


def metric_header(summary: BenchSummary, key: str) -> str:
    arrow = "↑" if summary.higher_is_better.get(key, True) else "↓"
    return f"{key} {arrow}"


def used_gpu(summary: BenchSummary) -> bool:
    """Whether some method's runs trained on an accelerator (the table then has a GPU-s column)."""
    return any(method.gpu_seconds > 0 for method in summary.methods)


def table_header(summary: BenchSummary) -> list[str]:
    return ["rank", "method", "Δm % (mean ± std)", *(metric_header(summary, k) for k in summary.metric_keys), "runs",
            "CPU-s", *(["GPU-s"] if used_gpu(summary) else [])]


def table_rows(summary: BenchSummary) -> list[list[str]]:
    """One row per method in rank order, as text."""
    rows = []
    gpu = used_gpu(summary)
    for method in sorted(summary.methods, key=lambda m: (m.rank, m.delta_m_mean)):
        metrics = [format_value(method.metrics_mean.get(key, math.nan)) for key in summary.metric_keys]
        rows.append([str(method.rank), method.label, format_delta_m(method, len(summary.seeds)), *metrics,
                     str(method.runs), f"{method.cpu_seconds:.0f}", *([f"{method.gpu_seconds:.0f}"] if gpu else [])])
    return rows


def render_table(summary: BenchSummary) -> Table:
    """The table for the terminal (``rich.console.Console().print(render_table(summary))``)."""
    table = Table(
        title=f"{summary.dataset} / {summary.model}: test Δm vs STL over seeds {summary.seeds} (lower is better)",
        caption=f"Δm variant: {summary.delta_m_variant}; metrics are test means over seeds at the selected point"
        + (f"\n{excluded_note(summary)}" if summary.excluded_metrics else ""),
    )
    for index, name in enumerate(table_header(summary)):
        table.add_column(name, justify="left" if index == 1 else "right", no_wrap=index < 3)
    for row in table_rows(summary):
        table.add_row(*row)
    return table


def markdown_table(summary: BenchSummary) -> str:
    """The table as GitHub-flavoured Markdown."""
    header = table_header(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i != 1 else "---" for i in range(len(header)))
             + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in table_rows(summary))
    return "\n".join(lines) + "\n"


def write_results_csv(summary: BenchSummary, path: Path) -> Path:
    """One row per method at full precision: Δm per seed (``delta_m_seeds`` names each one's seed), each metric's
    test mean and std, the compute, the selected point, and the metrics Δm leaves out (``metrics_not_in_delta_m``,
    ``;``-separated, the same in every row; see the report for why)."""
    header = ["rank", "method", "label", "delta_m_mean", "delta_m_std", "delta_m_per_seed", "delta_m_seeds"]
    for key in summary.metric_keys:
        header += [f"{key} mean", f"{key} std"]
    header += ["runs", "cpu_seconds", "gpu_seconds", "selected_options", "selected_lr", "selected_val_delta_m",
               "metrics_not_in_delta_m"]
    left_out = ";".join(summary.excluded_metrics)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for method in sorted(summary.methods, key=lambda m: (m.rank, m.delta_m_mean)):
            row: list[object] = [method.rank, method.method, method.label, repr(method.delta_m_mean),
                                 repr(method.delta_m_std), ";".join(repr(v) for v in method.delta_m_per_seed),
                                 ";".join(str(seed) for seed in method.delta_m_seeds)]
            for key in summary.metric_keys:
                row += [repr(method.metrics_mean.get(key, math.nan)), repr(method.metrics_std.get(key, math.nan))]
            row += [method.runs, repr(method.cpu_seconds), repr(method.gpu_seconds),
                    json.dumps(method.selected.options, sort_keys=True), repr(method.selected.lr),
                    repr(method.selected.val_delta_m), left_out]
            writer.writerow(row)
    return path
