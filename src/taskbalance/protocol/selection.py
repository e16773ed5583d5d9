"""Model selection: the epoch of a run and the point of a grid with the lowest validation Δm."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from taskbalance.protocol.delta_m import delta_m, delta_m_per_task, undefined_baselines
from taskbalance.training.result import EpochRecord, RunResult

DELTA_M_VARIANTS = ("all_metrics", "per_task")


def task_groups(metric_keys: Sequence[str]) -> dict[str, list[str]]:
    """``"task/metric"`` keys grouped by task, in order."""
    groups: dict[str, list[str]] = {}
    for key in metric_keys:
        groups.setdefault(key.split("/", 1)[0], []).append(key)
    return groups


def score(
    metrics: Mapping[str, float],
    baseline: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
    variant: str = "all_metrics",
) -> float:
    """Δm of ``metrics`` against ``baseline`` over the baseline's metrics, in the requested variant."""
    if variant == "all_metrics":
        return delta_m(metrics, baseline, higher_is_better)
    if variant == "per_task":
        return delta_m_per_task(metrics, baseline, higher_is_better, task_groups(list(baseline)))
    raise ValueError(f"delta_m variant must be one of {DELTA_M_VARIANTS}, got {variant!r}")


def defined_part(reference: Mapping[str, float]) -> dict[str, float]:
    """The metrics of ``reference`` that a relative change can be taken against (finite and > 0)."""
    undefined = undefined_baselines(reference)
    return {key: value for key, value in reference.items() if key not in undefined}


def rank_key(value: float) -> float:
    """Sort key of a Δm: a diverged run (NaN or inf metrics) ranks after every finite one, whatever its order."""
    return value if math.isfinite(value) else math.inf


def select_epoch(
    records: Sequence[EpochRecord],
    baseline: Mapping[str, float] | None,
    higher_is_better: Mapping[str, bool],
    variant: str = "all_metrics",
) -> int:
    """Index of the epoch with the lowest validation Δm (the first on ties).

    ``baseline=None`` is the single-task case, which has no baseline of its own: epochs are then compared by their
    Δm against the first epoch's validation metrics, i.e. by the mean relative improvement over the task's metrics.
    A metric that is 0, negative or not finite in the first epoch (an F1 of 0 while nothing is predicted positive,
    an accuracy of 0 on a tiny split) is measured against the first epoch in which it is not. Non-finite scores (a
    diverged epoch) are never preferred to finite ones. With a baseline, metrics whose baseline value is 0, negative
    or not finite have no relative change and are left out; when no metric has a reference at all, the last epoch is
    taken.
    """
    if not records:
        raise ValueError("a run without epochs has nothing to select")
    if baseline is not None:
        reference = defined_part(baseline)
    else:
        reference = {}
        for record in records:
            for key, value in defined_part(record.val).items():
                reference.setdefault(key, value)
    if not reference:
        return len(records) - 1
    scores = [score(record.val, reference, higher_is_better, variant) for record in records]
    return min(range(len(scores)), key=lambda i: rank_key(scores[i]))


def selected_record(
    result: RunResult, baseline: Mapping[str, float] | None, variant: str = "all_metrics"
) -> EpochRecord:
    """The record of the run's selected epoch."""
    return result.epochs[select_epoch(result.epochs, baseline, result.higher_is_better, variant)]
