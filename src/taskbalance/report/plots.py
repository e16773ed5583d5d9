"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend).

Every figure has a fixed size (``savefig`` without ``bbox_inches="tight"``) at :data:`DPI` dots per inch, so the
PNG's pixel size is known from the figure size:

* ``weights.png``: ``4.2·cols × (3.0·rows + 0.6)`` in, up to 3 panels per row, one per method;
* ``delta_m.png``: ``7.0 × (1.2 + 0.5·methods)`` in;
* ``compute.png``: ``11.0 × 4.2`` in (two panels);
* ``simplex.png``: ``7.0 × 5.2`` in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from taskbalance.protocol.summary import BenchSummary, MethodSummary
from taskbalance.training.result import RunResult

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType  # matplotlib ≥ 3.8; only read by type checkers

DPI = 120
TASK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                "#17becf")
# Tasks with equal weights (EW) overlap: the dashes keep each one visible.
TASK_DASHES: tuple[LineStyleType, ...] = ("-", "--", ":", "-.")
BETTER, WORSE = "#2a9d8f", "#e76f51"


def method_title(method: MethodSummary) -> str:
    """The method's label with its selected hyper-parameters, e.g. ``UW-SO (temperature=5)``."""
    options = []
    for key, value in method.selected.options.items():
        if isinstance(value, list | tuple):
            value = "(" + ", ".join(f"{v:.2g}" if isinstance(v, float) else str(v) for v in value) + ")"
        elif isinstance(value, float):
            value = f"{value:g}"
        options.append(f"{key}={value}")
    return method.label + (f" ({', '.join(options)})" if options else "")


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average (edges averaged over the points available)."""
    kernel = np.ones(window)
    totals = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones_like(values), kernel, mode="same")
    return totals / counts


def weights_panel_title(method: MethodSummary, run: RunResult | None, first_seed: int) -> str:
    """The method and its selected options, and the run's seed when it is not the first seed (whose run failed)."""
    title = method_title(method)
    return title if run is None or run.config.seed == first_seed else f"{title}, seed {run.config.seed}"


def plot_weights(summary: BenchSummary, runs: Mapping[str, RunResult], path: Path) -> Path:
    """Task weights over training, one panel per method, from the first seed's run of the selected point (the first
    finished seed's where that run failed; its panel then names the seed).

    Logged step weights are drawn raw (faint) and, when there are more than 50 points, as a moving average over
    1/25 of the run; a run without step logs falls back to its per-epoch mean weights.
    """
    methods = list(summary.methods)
    cols = min(3, max(1, len(methods)))
    rows = max(1, math.ceil(len(methods) / cols))
    height = 3.0 * rows + 0.6
    figure = Figure(figsize=(4.2 * cols, height), dpi=DPI)
    # Margins in inches: 0.75 above for the title, 0.75 below for the legend.
    grid = figure.add_gridspec(rows, cols, left=0.3 / (4.2 * cols) + 0.04, right=0.98, top=1 - 0.75 / height,
                               bottom=0.75 / height, hspace=0.6, wspace=0.28)
    colours = {task: TASK_COLOURS[i % len(TASK_COLOURS)] for i, task in enumerate(summary.tasks)}
    dashes = {task: TASK_DASHES[i % len(TASK_DASHES)] for i, task in enumerate(summary.tasks)}
    first_seed = summary.seeds[0] if summary.seeds else 0
    for index, method in enumerate(methods):
        axes = figure.add_subplot(grid[index // cols, index % cols])
        run = runs.get(method.seed_run_ids[0]) if method.seed_run_ids else None
        axes.set_title(weights_panel_title(method, run, first_seed), fontsize=9)
        if run is None:
            axes.text(0.5, 0.5, "run not in the store", ha="center", va="center", transform=axes.transAxes)
            axes.set_axis_off()
            continue
        if run.step_weights:
            steps = np.asarray(run.steps, dtype=float)
            weights = np.asarray(run.step_weights, dtype=float)
            axes.set_xlabel("optimizer step", fontsize=8)
        else:
            steps = np.asarray([r.epoch for r in run.epochs], dtype=float)
            weights = np.asarray([[r.mean_weights.get(t, math.nan) for t in run.tasks] for r in run.epochs])
            axes.set_xlabel("epoch (mean weight)", fontsize=8)
        for column, task in enumerate(run.tasks):
            values = weights[:, column]
            colour, dash = colours.get(task, "black"), dashes.get(task, "-")
            if len(values) > 50 and np.nanstd(values) > 0:
                axes.plot(steps, values, color=colour, alpha=0.25, linewidth=0.6)
                axes.plot(steps, _smooth(values, max(3, len(values) // 25)), color=colour, linestyle=dash,
                          linewidth=1.6)
            else:
                axes.plot(steps, values, color=colour, linestyle=dash, linewidth=1.6,
                          marker="o" if len(values) <= 50 else None, markersize=3)
        axes.tick_params(labelsize=8)
        axes.set_ylabel("weight", fontsize=8)
        axes.grid(alpha=0.3)
        low, high = np.nanmin(weights), np.nanmax(weights)
        if math.isfinite(low) and high - low < 1e-9:  # constant weights (EW): show the value, not float noise
            axes.set_ylim(low - 0.5 * max(abs(low), 0.1), high + 0.5 * max(abs(high), 0.1))
    handles = [Line2D([], [], color=colours[t], linestyle=dashes[t], linewidth=2) for t in summary.tasks]
    figure.legend(handles, summary.tasks, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=9)
    figure.suptitle(f"Task weights over training (seed {first_seed}, selected configuration)", fontsize=11,
                    y=1 - 0.15 / height)
    figure.savefig(path, dpi=DPI)
    return path


def plot_delta_m(summary: BenchSummary, path: Path) -> Path:
    """Test Δm per method in rank order (best on top): mean with ± std error bars and every seed as a dot."""
    methods = sorted(summary.methods, key=lambda m: (m.rank, m.delta_m_mean))
    figure = Figure(figsize=(7.0, 1.2 + 0.5 * len(methods)), dpi=DPI)
    axes = figure.add_subplot()
    positions = np.arange(len(methods))[::-1]
    means = [m.delta_m_mean for m in methods]
    axes.barh(positions, means, xerr=[m.delta_m_std for m in methods], height=0.6,
              color=[BETTER if v < 0 else WORSE for v in means], alpha=0.85, capsize=4, ecolor="#333333")
    for position, method in zip(positions, methods, strict=True):
        axes.scatter(method.delta_m_per_seed, [position] * len(method.delta_m_per_seed), s=12, color="black",
                     zorder=3)
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_yticks(positions, [method_title(m) for m in methods], fontsize=8)
    axes.set_xlabel("test Δm (%) vs single-task baselines — lower is better", fontsize=9)
    axes.set_title(f"{summary.dataset} / {summary.model}: Δm mean ± std over seeds {summary.seeds}", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    axes.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path


def _label_points(axes: Axes, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], log_x: bool) -> None:
    """Label each point on its right; a point crowding the previous one (in y order) gets its label on the left."""
    if not xs:
        return
    x_values = np.log10(np.asarray(xs, dtype=float)) if log_x else np.asarray(xs, dtype=float)
    x_span = max(float(np.ptp(x_values)), 1e-9)
    y_span = max(float(np.ptp(ys)), 1e-9)
    previous: tuple[int, bool] | None = None
    for index in np.argsort(ys):
        right = True
        if previous is not None:
            other, other_right = previous
            crowded = (abs(x_values[index] - x_values[other]) < 0.05 * x_span
                       and abs(ys[index] - ys[other]) < 0.08 * y_span)
            right = not other_right if crowded else True
        axes.annotate(labels[index], (xs[index], ys[index]), xytext=(7 if right else -7, 0),
                      textcoords="offset points", ha="left" if right else "right", va="center", fontsize=7.5)
        previous = (int(index), right)


def plot_compute(summary: BenchSummary, path: Path) -> Path:
    """Test Δm against the compute spent per method: training runs (left) and CPU-seconds (right), or GPU-seconds
    when every method's runs include some that trained on a GPU (a GPU run's CPU time is only its host process)."""
    methods = list(summary.methods)
    on_gpu = bool(methods) and all(m.gpu_seconds > 0 for m in methods)
    figure = Figure(figsize=(11.0, 4.2), dpi=DPI)
    means = [m.delta_m_mean for m in methods]
    stds = [m.delta_m_std for m in methods]
    labels = [m.label for m in methods]
    panels = (("training runs (grid search and seeds)", [float(m.runs) for m in methods]),
              ("GPU-seconds (wall time on the GPU)", [m.gpu_seconds for m in methods]) if on_gpu
              else ("CPU-seconds", [m.cpu_seconds for m in methods]))
    for index, (name, xs) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        axes.errorbar(xs, means, yerr=stds, fmt="o", color="#264653", ecolor="#8d99ae", capsize=3, markersize=5)
        log_x = bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 20
        _label_points(axes, xs, means, labels, log_x)
        axes.axhline(0.0, color="black", linewidth=0.8)
        left, right = min(xs, default=0.0), max(xs, default=1.0)
        # Wide x margins: the labels beside the outermost points must stay inside the panel.
        if log_x:
            axes.set_xscale("log")
            axes.set_xlim(left / 2.5, right * 3.5)
        else:
            pad = 0.3 * (right - left) if right > left else max(1.0, 0.3 * right)
            axes.set_xlim(left - pad, right + pad)
        axes.set_xlabel(name, fontsize=9)
        axes.set_ylabel("test Δm (%) — lower is better", fontsize=9)
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=8)
    figure.suptitle("Δm against compute spent per method", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path


def to_ternary(weights: Sequence[float]) -> tuple[float, float]:
    """Cartesian position of a 3-task weight vector (normalised to sum 1) in the triangle with corners
    task 0 = (0, 0), task 1 = (1, 0), task 2 = (½, √3/2)."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    return float(w[1] + 0.5 * w[2]), float(w[2] * math.sqrt(3) / 2)


def plot_simplex(
    summary: BenchSummary,
    scalarization: MethodSummary,
    uwso_weights: Sequence[float] | None,
    path: Path,
    marked_label: str = "UW-SO",
) -> Path:
    """Scalarization's grid on the 3-task simplex coloured by validation Δm; selected point, the mean weights of one
    method (``uwso_weights``, labelled ``marked_label``) and equal weighting marked. Of several learning rates at one
    weight vector, the best validation Δm is shown."""
    best: dict[tuple[float, ...], float] = {}
    for point in scalarization.grid:
        key = tuple(float(w) for w in point.options["weights"])
        best[key] = min(best.get(key, math.inf), point.val_delta_m)
    figure = Figure(figsize=(7.0, 5.2), dpi=DPI)
    axes = figure.add_axes((0.02, 0.03, 0.78, 0.86))
    colour_axes = figure.add_axes((0.84, 0.16, 0.03, 0.66))
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2], [0.0, 0.0]])
    axes.plot(corners[:, 0], corners[:, 1], color="black", linewidth=1.0)
    for fraction in (0.2, 0.4, 0.6, 0.8):  # iso-weight lines of each task
        for task in range(3):
            ends = []
            for other in range(3):
                if other != task:
                    w = [0.0, 0.0, 0.0]
                    w[task], w[other] = fraction, 1 - fraction
                    ends.append(to_ternary(w))
            axes.plot([ends[0][0], ends[1][0]], [ends[0][1], ends[1][1]], color="#cccccc", linewidth=0.6, zorder=0)
    xy = np.array([to_ternary(w) for w in best]) if best else np.zeros((0, 2))
    scatter = axes.scatter(xy[:, 0], xy[:, 1], c=list(best.values()), cmap="viridis_r", s=70, edgecolors="white",
                           linewidths=0.5, zorder=2)
    figure.colorbar(scatter, cax=colour_axes).set_label("validation Δm (%) — lower is better", fontsize=9)
    selected = to_ternary(scalarization.selected.options["weights"])
    axes.scatter(*selected, marker="*", s=380, facecolor="none", edgecolors="#d62728", linewidths=2.0, zorder=3,
                 label="selected")
    axes.scatter(*to_ternary([1, 1, 1]), marker="X", s=90, color="#555555", zorder=3, label="EW (⅓, ⅓, ⅓)")
    if uwso_weights is not None:
        axes.scatter(*to_ternary(uwso_weights), marker="D", s=80, facecolor="#ff7f0e", edgecolors="black",
                     zorder=4, label=f"{marked_label} mean weights")
    names = summary.tasks
    axes.text(-0.03, -0.03, names[0], ha="right", va="top", fontsize=10)
    axes.text(1.03, -0.03, names[1], ha="left", va="top", fontsize=10)
    axes.text(0.5, math.sqrt(3) / 2 + 0.03, names[2], ha="center", va="bottom", fontsize=10)
    axes.set_xlim(-0.12, 1.12)
    axes.set_ylim(-0.1, math.sqrt(3) / 2 + 0.1)
    axes.set_aspect("equal")
    axes.set_axis_off()
    axes.legend(loc="upper left", fontsize=8, frameon=False, bbox_to_anchor=(-0.02, 1.02))
    figure.suptitle("Scalarization grid on the task-weight simplex", fontsize=11)
    figure.savefig(path, dpi=DPI)
    return path
