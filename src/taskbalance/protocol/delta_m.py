"""Δm: the mean relative change of a multi-task model's metrics against single-task baselines, in percent.

Δm (Maninis, Radosavovic & Kokkinos 2019, "Attentive Single-Tasking of Multiple Tasks", CVPR; the evaluation
measure of Kirchdorfer et al. 2024, arXiv 2408.07985) is

    Δm = (1/N) · Σ_i (−1)^{h_i} · (M_i − B_i) / B_i · 100

over the N metrics of the baseline, with M_i the model's metric, B_i the single-task baseline's (same backbone),
and h_i = 1 when higher is better for metric i, else 0. Lower is better: with this sign convention an improvement
over the baselines gives a NEGATIVE Δm (an accuracy up by 1 % of its baseline contributes −1, an error down by
1 % contributes −1 as well). This is the sign of the tables of Navon et al. 2022 (Nash-MTL), Liu et al. 2023 (FAMO)
and Elich et al. 2024, whose published Δm the test suite recomputes from their per-metric rows; a paper that
writes the measure as an average gain (positive = better) differs in sign only.

Metric names are the protocol's ``"task/metric"`` keys, but any names work as long as the three mappings agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def _relative_changes(
    metrics: Mapping[str, float], baseline: Mapping[str, float], higher_is_better: Mapping[str, bool]
) -> dict[str, float]:
    """Per metric of ``baseline``: (−1)^{h_i}·(M_i − B_i)/B_i·100, with the input checked."""
    if not baseline:
        raise ValueError("Δm needs at least one baseline metric, got an empty baseline")
    missing = [name for name in baseline if name not in metrics]
    if missing:
        raise ValueError(f"Δm: metric(s) {missing} of the baseline are missing from the metrics")
    undirected = [name for name in baseline if name not in higher_is_better]
    if undirected:
        raise ValueError(f"Δm: metric(s) {undirected} have no entry in higher_is_better")
    undefined = undefined_baselines(baseline)
    if undefined:
        name = next(iter(undefined))
        raise ValueError(f"Δm: baseline of metric {name!r} must be finite and positive, got {float(baseline[name])}")
    changes: dict[str, float] = {}
    for name, base in baseline.items():
        base = float(base)
        sign = -1.0 if higher_is_better[name] else 1.0
        changes[name] = sign * (float(metrics[name]) - base) / base * 100.0
    return changes


def undefined_baselines(baseline: Mapping[str, float]) -> dict[str, str]:
    """The metrics of ``baseline`` whose relative change is undefined, each with the reason.

    A baseline of 0 divides by zero; a negative one would flip the metric's direction silently; a non-finite one
    has no scale. None of them has a meaningful relative change, so Δm refuses them rather than patching them with
    an epsilon; a caller may leave them out of Δm and say so.

    Example:
        >>> undefined_baselines({"a/acc": 0.0, "b/mae": 0.5})
        {'a/acc': 'its baseline is 0.0: a relative change to it is undefined'}
    """
    undefined: dict[str, str] = {}
    for name, base in baseline.items():
        value = float(base)
        if not math.isfinite(value) or value <= 0:
            undefined[name] = f"its baseline is {value}: a relative change to it is undefined"
    return undefined


def delta_m(
    metrics: Mapping[str, float], baseline: Mapping[str, float], higher_is_better: Mapping[str, bool]
) -> float:
    """Δm in percent over all metrics of ``baseline`` (each metric weighs 1/N; lower is better).

    Args:
        metrics: the model's metrics; may hold more names than the baseline (they are ignored).
        baseline: the single-task baselines B_i; defines the N metrics. Each must be finite and > 0.
        higher_is_better: the direction h_i of every baseline metric.

    A non-finite metric value (a diverged run) gives a non-finite Δm rather than an error.

    Example:
        >>> delta_m({"seg/miou": 0.625, "depth/abs_err": 0.375},
        ...         {"seg/miou": 0.5, "depth/abs_err": 0.5},
        ...         {"seg/miou": True, "depth/abs_err": False})  # (−25 + −25) / 2: both improved by 25 %
        -25.0
    """
    changes = _relative_changes(metrics, baseline, higher_is_better)
    return sum(changes.values()) / len(changes)


def delta_m_per_task(
    metrics: Mapping[str, float],
    baseline: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
    tasks: Mapping[str, Sequence[str]],
) -> float:
    """The per-task-averaged Δm: the mean over tasks of the mean relative change over each task's metrics.

    Unlike :func:`delta_m`, a task with five metrics (normals) weighs as much as a task with one (classification).
    With one metric per task both variants agree.

    Args:
        metrics, baseline, higher_is_better: as in :func:`delta_m`.
        tasks: task name → names of its metrics (keys of ``baseline``). Every baseline metric must belong to
            exactly one task, and every task must have at least one metric.

    Example:
        >>> delta_m_per_task({"a/x": 1.25, "a/y": 1.0, "b/z": 3.0},
        ...                  {"a/x": 1.0, "a/y": 1.0, "b/z": 2.0},
        ...                  {"a/x": True, "a/y": True, "b/z": True},
        ...                  {"a": ["a/x", "a/y"], "b": ["b/z"]})  # ((−25 + 0)/2 + −50) / 2
        -31.25
    """
    changes = _relative_changes(metrics, baseline, higher_is_better)
    if not tasks:
        raise ValueError("per-task Δm needs at least one task in the task grouping")
    owner: dict[str, str] = {}
    for task, names in tasks.items():
        if isinstance(names, str) or not names:
            raise ValueError(f"per-task Δm: task {task!r} must list at least one metric name, got {names!r}")
        for name in names:
            if name not in baseline:
                raise ValueError(f"per-task Δm: metric {name!r} of task {task!r} is not in the baseline")
            if name in owner:
                raise ValueError(f"per-task Δm: metric {name!r} is listed under both {owner[name]!r} and {task!r}")
            owner[name] = task
    ungrouped = [name for name in baseline if name not in owner]
    if ungrouped:
        raise ValueError(f"per-task Δm: baseline metric(s) {ungrouped} belong to no task of the grouping")
    task_means = [sum(changes[name] for name in names) / len(names) for names in tasks.values()]
    return sum(task_means) / len(task_means)
