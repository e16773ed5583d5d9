"""The verdict of the reproduction study (scripts/reproduction.py): STUDY.md and its plots, from the committed store.

Every number is read from the store: the parts' benchmark summaries (``taskbalance report`` renders the same tables)
and, for the weight-decay grid, the runs themselves, scored against the multilenet part's single-task baselines.
A part that has not finished gets no verdict and no number in its place, with two exceptions, each marked as not a
verdict: Scalarization's grid search shows its finished runs so far (its weight simplex and best point on the first
seed), and the larger model's part, once its STL baselines have finished, is scored by its own protocol from the
runs stored so far, for the methods whose whole first-seed grid has finished (their seed-0 test Δm next to
multilenet's).

Verdicts compare means over the seeds against the seed-to-seed noise: a difference counts when it exceeds the
combined standard deviation ``√(σ_a² + σ_b²)`` of the two means being compared (ddof = 0, 3 seeds). "Confirmed"
and "not confirmed" need the difference the claim is about to exceed that noise in the claim's direction or
against it; "mixed" is every verdict in between, where the data cannot separate the two (a difference within the
noise either way, or, for claim 4, two readings of the grid that disagree). A method with fewer than two finished
seeds has no measured noise: no difference involving it counts as more than the noise.

Every method table is followed by the selections that lie on an edge of their grid (a wider grid might select past
them), and claim 3 says whether each method's selection on multilenet lies inside its smaller grid on the larger
model, i.e. whether the two grids' difference can enter the comparison of spreads.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from taskbalance import methods as method_registry
from taskbalance.protocol.bench import run_bench, stl_configs
from taskbalance.protocol.delta_m import delta_m
from taskbalance.protocol.selection import score, selected_record, task_groups
from taskbalance.protocol.summary import BenchSummary, MethodSummary
from taskbalance.report import read_summary
from taskbalance.report.plots import BETTER, DPI, method_title
from taskbalance.report.ranking import common_items, kendall_tau
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig
from taskbalance.training.result import RunResult

if TYPE_CHECKING:
    from reproduction import Study

CONFIRMED, NOT_CONFIRMED, MIXED, NOT_RUN = "confirmed", "not confirmed", "mixed", "not run yet"


@dataclass(frozen=True)
class Verdict:
    label: str
    why: str

    def line(self) -> str:
        return f"**Verdict: {self.label}.** {self.why}"


def has_seed_noise(method: MethodSummary) -> bool:
    """Whether the method's seed-to-seed noise was measured: two or more seeds finished (one gives a std of 0)."""
    return len(method.delta_m_per_seed) >= 2


def noise(*methods: MethodSummary) -> float:
    """Combined seed standard deviation of the methods' mean Δm; infinite (unknown) when one of them has fewer than
    two finished seeds, whose standard deviation of 0 would make any gap look larger than the noise."""
    if not all(has_seed_noise(m) for m in methods):
        return math.inf
    return math.sqrt(sum(m.delta_m_std**2 for m in methods))


def first_seed_delta_m(method: MethodSummary) -> float:
    """Test Δm of the selected point's run on the first seed (the one grids are searched on); NaN when that run
    failed: ``delta_m_per_seed`` skips failed seeds, so its first entry is the first seed only when that one ran."""
    if method.selected.run_ids and method.seed_run_ids and method.seed_run_ids[0] == method.selected.run_ids[0]:
        return method.delta_m_per_seed[0]
    return math.nan


def finished(summary: BenchSummary) -> list[MethodSummary]:
    return [m for m in summary.methods if not m.failed and math.isfinite(m.delta_m_mean)]


def by_name(summary: BenchSummary | None, name: str) -> MethodSummary | None:
    if summary is None:
        return None
    return next((m for m in finished(summary) if m.method == name), None)


def references(summary: BenchSummary) -> tuple[dict[str, float], dict[str, float]]:
    """The validation and test STL baselines that Δm is taken against (the metrics not excluded from it)."""
    return ({k: v for k, v in summary.baseline_val.items() if k not in summary.excluded_metrics},
            {k: v for k, v in summary.baseline_test.items() if k not in summary.excluded_metrics})


def fmt(value: float, digits: int = 2) -> str:
    return "—" if not math.isfinite(value) else f"{value:+.{digits}f}"


def pm(method: MethodSummary) -> str:
    if not has_seed_noise(method):
        return f"{method.delta_m_mean:+.2f} (one seed, no spread)"
    return f"{method.delta_m_mean:+.2f} ± {method.delta_m_std:.2f}"


def selected_text(method: MethodSummary) -> str:
    """``lr 0.001, temperature=5``: the selected learning rate and options (method_title's, without the label)."""
    title = method_title(method)
    options = title[len(method.label) + 2:-1] if title != method.label else ""
    return f"lr {method.selected.lr:g}" + (f", {options}" if options else "")


def grid_edges(summary: BenchSummary) -> str:
    """Which selected points lie on an edge of their method's grid, where a wider grid might select past them.

    A learning rate or a numeric option (UW-SO's temperature) is on the edge when it is the least or the largest
    of at least three values the grid holds; with two values every selection is an edge, and the sentence says so
    once instead. A weight vector (Scalarization) is on the edge when one of its weights is the least the grid
    gives any weight: the boundary of the searched simplex.
    """
    edges: list[str] = []
    two_valued: list[str] = []
    for method in finished(summary):
        found: list[str] = []
        dimensions = {"lr": ("learning rate", method.selected.lr, [g.lr for g in method.grid])}
        for name, chosen in method.selected.options.items():
            dimensions[name] = (name, chosen, [g.options.get(name) for g in method.grid])
        for name, (title, chosen, values) in dimensions.items():
            if isinstance(chosen, list | tuple):
                least = min(min(v) for v in values if isinstance(v, list | tuple))
                at_least = sum(1 for weight in chosen if weight == least)
                if at_least and any(min(v) > least for v in values if isinstance(v, list | tuple)):
                    found.append(f"{at_least} of its {name} at the grid's least, {least:g}")
                continue
            if isinstance(chosen, bool) or not isinstance(chosen, int | float):
                continue
            distinct = sorted({v for v in values if isinstance(v, int | float)})
            if len(distinct) == 2 and title not in two_valued:
                two_valued.append(title)
            elif len(distinct) >= 3 and chosen in (distinct[0], distinct[-1]):
                side = "least" if chosen == distinct[0] else "largest"
                found.append(f"{name} {chosen:g}, the {side} of {len(distinct)}")
        if found:
            edges.append(f"{method.label} ({'; '.join(found)})")
    axes = "in any of its grid's axes of three or more values" if two_valued else "of its grid"
    text = (f"On an edge of its grid, where a wider grid might select past it: {'; '.join(edges)}." if edges else
            f"No selected point lies on an edge {axes}.")
    if two_valued:
        has, it = ("have", "them") if len(two_valued) > 1 else ("has", "it")
        text += (f" The {' and the '.join(two_valued)} {has} only two values in the grid, so every selected one is "
                 f"an edge of {it}.")
    return text


def grid_containment(small: BenchSummary, large: BenchSummary) -> str:
    """Whether searching the first model over the second model's grid would select the same points.

    Selection takes the least validation Δm over the grid, so a point selected from a grid that lies inside a
    sub-grid is also the sub-grid's selection. Where, for every method, the second model's grid is a sub-grid of
    the first's (no point the first never ran) and holds the first's selection, restricting the first model to the
    second's grid changes nothing, and the grids' difference cannot explain a difference in spread. Either failing
    is named: a selection outside the other grid, or points of the other grid (e.g. an extended temperature) the
    first model never ran, where that argument cannot be made.
    """
    def key(lr: float, options: Mapping[str, object]) -> tuple[float, str]:
        return lr, json.dumps(options, sort_keys=True)

    outside, unrun, common = [], [], 0
    for method in finished(small):
        other = by_name(large, method.method)
        if other is None:
            continue
        common += 1
        mine = {key(g.lr, g.options) for g in method.grid}
        theirs = {key(g.lr, g.options) for g in other.grid}
        if key(method.selected.lr, method.selected.options) not in theirs:
            outside.append(f"{method.label} ({selected_text(method)})")
        extra = len(theirs - mine)
        if extra:
            unrun.append(f"{method.label} ({extra} point{'s' if extra > 1 else ''})")
    if not common:
        return ""
    if not outside and not unrun:
        return (f"Every method's point selected on {small.model} is also a point of its grid on {large.model}, and "
                f"{large.model}'s grid is part of {small.model}'s, so searching {small.model} over {large.model}'s "
                "grid would select the same points: the grids' difference does not enter the comparison.")
    text = []
    if outside:
        text.append(f"Selected on {small.model} outside their grid on {large.model}: {', '.join(outside)}; over "
                    f"{large.model}'s grid these methods would select other points on {small.model}, so part of the "
                    "difference in spread may come from the grids.")
    if unrun:
        text.append(f"{large.model}'s grid holds points {small.model} never ran for {', '.join(unrun)}, so whether "
                    f"{small.model} would select the same points over {large.model}'s grid is not known.")
    return " ".join(text)


# ---------------------------------------------------------------------------------------------------------- claims


CLAIM1_RIVALS = ("ew", "uw", "dwa", "rlw", "imtll", "gls")
"""The methods claim 1 names. UW-O, the paper's other analytical weighting (UW-SO without the softmax), is not one of
them: it is compared with UW-SO on its own (:func:`softmax_effect`)."""


def claim_uwso_best(summary: BenchSummary | None) -> Verdict:
    """Claim 1: UW-SO's test Δm is lower than that of each loss weighting the claim names (CLAIM1_RIVALS)."""
    uwso = by_name(summary, "uwso")
    if summary is None or uwso is None:
        return Verdict(NOT_RUN, "The multilenet part has not finished.")
    others = [m for m in finished(summary) if m.method in CLAIM1_RIVALS]
    clearly_better = [m for m in others if m.delta_m_mean < uwso.delta_m_mean - noise(m, uwso)]
    better = [m for m in others if m.delta_m_mean < uwso.delta_m_mean]
    within = [m for m in others if abs(m.delta_m_mean - uwso.delta_m_mean) <= noise(m, uwso)]
    beaten = [m for m in others if m.delta_m_mean > uwso.delta_m_mean + noise(m, uwso)]
    beaten_text = (f" It beats {listed(beaten)} by more than the seed noise." if beaten else
                   " It beats no other weighting by more than the seed noise.")
    if clearly_better:
        return Verdict(NOT_CONFIRMED, f"UW-SO ({pm(uwso)}) is beaten by more than the seed noise by "
                                      f"{listed(clearly_better)}.{beaten_text}")
    if better:
        return Verdict(MIXED, f"UW-SO ({pm(uwso)}) is not the best: {listed(better)} "
                              f"{'have' if len(better) > 1 else 'has'} a lower mean, within the "
                              f"seed noise, so the data cannot separate them.{beaten_text}")
    if within:
        return Verdict(MIXED, f"UW-SO ({pm(uwso)}) has the lowest mean, but {listed(within)} "
                              f"{'are' if len(within) > 1 else 'is'} within the seed "
                              f"noise of it.{beaten_text}")
    return Verdict(CONFIRMED, f"UW-SO ({pm(uwso)}) has the lowest test Δm, lower than every other loss weighting by "
                              "more than the seed noise.")


def searched_seed_gap(summary: BenchSummary) -> str:
    """How the seed every grid was searched on compares with the others: the one-seed search's own caveat."""
    # Only methods with every seed finished: positions in delta_m_per_seed are seeds only then.
    gaps = [m.delta_m_per_seed[0] - float(np.mean(m.delta_m_per_seed[1:]))
            for m in finished(summary) if len(m.delta_m_per_seed) == len(summary.seeds) > 1]
    if not gaps:
        return ""
    lower = sum(1 for gap in gaps if gap < 0)
    return (f"Seed {summary.seeds[0]}, on which every grid was searched, gives a lower test Δm than the mean of the "
            f"other seeds for {lower} of {len(gaps)} methods (mean gap {float(np.mean(gaps)):+.2f} points): either "
            "the selection's optimism on the seed it was made on, or a seed that suits every method (all methods "
            "share each seed's initialisation and data order); searching on one seed cannot tell the two apart.")


def softmax_effect(uwso: MethodSummary, uwo: MethodSummary) -> str:
    """What the softmax and its tuned temperature add over UW-O's plain inverse-loss weights."""
    gap, limit = uwo.delta_m_mean - uwso.delta_m_mean, noise(uwso, uwo)
    if abs(gap) <= limit:
        outcome = f"within the seed noise ({limit:.2f}) of each other, so the tuned temperature buys nothing measurable"
    elif gap > 0:
        outcome = f"UW-SO better by {gap:.2f} points, more than the seed noise ({limit:.2f})"
    else:
        outcome = f"UW-O better by {-gap:.2f} points, more than the seed noise ({limit:.2f})"
    return (f"Against UW-O (ω_k = 1/L_k, the same weights before the softmax, no temperature to tune): UW-SO "
            f"{pm(uwso)} in {uwso.runs} runs, UW-O {pm(uwo)} in {uwo.runs}: {outcome}.")


def listed(methods: Sequence[MethodSummary]) -> str:
    """``EW (+7.57 ± 1.53), DWA (+7.59 ± 1.58)``."""
    return ", ".join(f"{m.label} ({pm(m)})" for m in methods)


def claim_close_to_scalarization(paper: BenchSummary | None, brute: BenchSummary | None) -> Verdict:
    """Claim 2: UW-SO comes close to the best Scalarization at a fraction of its cost."""
    uwso, scalarization = by_name(paper, "uwso"), by_name(brute, "scalarization")
    if uwso is None or scalarization is None:
        return Verdict(NOT_RUN, "The scalarization part (or the multilenet part) has not finished.")
    gap = uwso.delta_m_mean - scalarization.delta_m_mean
    cost = scalarization.cpu_seconds / uwso.cpu_seconds if uwso.cpu_seconds else math.inf
    runs = f"{scalarization.runs} runs and {cost:.1f}× the CPU time of UW-SO's {uwso.runs}"
    if gap <= 0:
        return Verdict(CONFIRMED, f"UW-SO ({pm(uwso)}) is at least as good as the best Scalarization "
                                  f"({pm(scalarization)}), which costs {runs}.")
    if not math.isfinite(noise(uwso, scalarization)):
        return Verdict(MIXED, f"UW-SO ({pm(uwso)}) is {gap:.2f} points behind the best Scalarization "
                              f"({pm(scalarization)}), and with one of them on fewer than two finished seeds the "
                              f"seed noise is unknown; Scalarization costs {runs}.")
    if gap <= noise(uwso, scalarization):
        return Verdict(CONFIRMED, f"UW-SO ({pm(uwso)}) is {gap:.2f} points behind the best Scalarization "
                                  f"({pm(scalarization)}), within the seed noise; Scalarization costs {runs}.")
    return Verdict(NOT_CONFIRMED, f"UW-SO ({pm(uwso)}) is {gap:.2f} points behind the best Scalarization "
                                  f"({pm(scalarization)}), more than the seed noise "
                                  f"({noise(uwso, scalarization):.2f}); Scalarization costs {runs}.")


@dataclass(frozen=True)
class SimplexPoint:
    """One Scalarization run of the grid search (first seed), scored at its selected epoch."""

    weights: tuple[float, ...]
    lr: float
    val_delta_m: float
    test_delta_m: float
    test_metrics: Mapping[str, float] = field(default_factory=dict)


def simplex_points(study: Study, store: RunStore, paper: BenchSummary) -> tuple[list[SimplexPoint], int]:
    """The Scalarization grid search's finished runs on the first seed, and how many it has in all.

    Scored against the multilenet part's STL baselines, which the scalarization part shares (the same runs), so the
    numbers are those its summary will hold; read from the runs, they are there before the part has finished.
    """
    spec = study.bench_parts()["scalarization"].spec
    reference_val, reference_test = references(paper)
    configs = [spec.config("scalarization", options, lr, spec.seeds[0], spec.trained_tasks)
               for options in spec.grid("scalarization") for lr in spec.lrs]
    points = []
    for config in configs:
        result = store.get(config.run_id())
        if result is None:
            continue
        record = selected_record(result, reference_val, paper.delta_m_variant)
        points.append(SimplexPoint(
            tuple(config.method_options["weights"]), config.lr,
            score(record.val, reference_val, paper.higher_is_better, paper.delta_m_variant),
            score(record.test, reference_test, paper.higher_is_better, paper.delta_m_variant), record.test))
    return points, len(configs)


def first_seed_test_metrics(store: RunStore, summary: BenchSummary) -> dict[str, Mapping[str, float]]:
    """Per finished method (by label), the test metrics of its selected point's run on the first seed, at the epoch
    selected by validation Δm: the same seed and selection as the Scalarization grid's points."""
    reference_val, _ = references(summary)
    metrics: dict[str, Mapping[str, float]] = {}
    for method in finished(summary):
        first = selected_seed0_run(store, method)
        if first is not None:
            metrics[method.label] = selected_record(first, reference_val, summary.delta_m_variant).test
    return metrics


def scalarization_so_far(points: Sequence[SimplexPoint], total: int, uwso: MethodSummary | None) -> str:
    """An unfinished grid search in numbers: its best point so far (first seed) next to UW-SO's on the same seed."""
    if not points:
        return f"None of the {total} grid-search runs of Scalarization has finished yet."
    best = min(points, key=lambda p: p.val_delta_m)
    weights = ", ".join(f"{w:g}" for w in best.weights)
    text = (f"**So far (not a verdict):** {len(points)} of the {total} grid-search runs (seed 0) have finished. The "
            f"best of them by validation Δm is weights ({weights}) at lr {best.lr:g}: validation Δm "
            f"{best.val_delta_m:+.2f}, test Δm {best.test_delta_m:+.2f} (seed 0).")
    if uwso is not None and math.isfinite(first_seed_delta_m(uwso)):
        text += (f" UW-SO's selected point on the same seed: validation Δm {uwso.selected.val_delta_m:+.2f}, test Δm "
                 f"{fmt(first_seed_delta_m(uwso))}. Scalarization's best validation Δm can only fall as the rest "
                 "of the grid runs.")
    return text


@dataclass(frozen=True)
class Spread:
    model: str
    methods: int
    max_minus_min: float
    std_over_methods: float
    mean_seed_std: float


def spread(summary: BenchSummary, methods: Sequence[str]) -> Spread:
    chosen = [m for m in finished(summary) if m.method in methods]
    means = np.array([m.delta_m_mean for m in chosen])
    seed_std = (math.inf if not all(has_seed_noise(m) for m in chosen)
                else float(np.mean([m.delta_m_std for m in chosen])))
    return Spread(summary.model, len(chosen), float(means.max() - means.min()), float(means.std()), seed_std)


def per_seed_spreads(small: BenchSummary, large: BenchSummary, methods: Sequence[str]) -> str:
    """The spread on each seed by itself (max − min over the methods of that seed's test Δm), for both models.

    Not part of the verdict's rule (which compares the spreads of the means), but a check of it: a shrinking spread
    that holds on every seed does not rest on one seed's luck.
    """
    def per_seed(summary: BenchSummary) -> list[float] | None:
        rows = [m.delta_m_per_seed for m in finished(summary) if m.method in methods]
        # Positions are seeds only when every seed of every method finished.
        if not rows or any(len(r) != len(summary.seeds) for r in rows) or len(summary.seeds) < 2:
            return None
        values = np.array(rows)
        return [float(v) for v in values.max(axis=0) - values.min(axis=0)]

    a, b = per_seed(small), per_seed(large)
    if a is None or b is None or len(a) != len(b):
        return ""
    shrinks = sum(1 for x, y in zip(a, b, strict=True) if y < x)
    return (f" Seed by seed, max − min is {', '.join(f'{x:.2f}' for x in a)} on {small.model} and "
            f"{', '.join(f'{y:.2f}' for y in b)} on {large.model}: smaller on {large.model} on {shrinks} of "
            f"{len(a)} seeds.")


def leave_one_out_spreads(small: BenchSummary, large: BenchSummary, methods: Sequence[str]) -> str:
    """The spreads with each method left out in turn, and how alike the two models order the methods.

    Not part of the verdict's rule either: it says whether the comparison of spreads rests on one method (a single
    method far from the rest decides max − min by itself) and whether the larger network keeps the ranking
    (Kendall's τ between the two orders of the mean test Δm).
    """
    if len(methods) < 3:
        return ""
    rows = []
    for left_out in methods:
        rest = [m for m in methods if m != left_out]
        rows.append((left_out, spread(small, rest).max_minus_min, spread(large, rest).max_minus_min))
    smaller = sum(1 for _, a, b in rows if b < a)
    name, a, b = max(rows, key=lambda row: abs((row[2] - row[1]) - (spread(large, methods).max_minus_min
                                                                       - spread(small, methods).max_minus_min)))
    label = next(m.label for m in small.methods if m.method == name)

    def order(summary: BenchSummary) -> list[str]:
        chosen = [m for m in finished(summary) if m.method in methods]
        return [m.method for m in sorted(chosen, key=lambda m: m.delta_m_mean)]

    tau = kendall_tau(order(small), order(large))
    return (f" Leaving out one method at a time, max − min is smaller on {large.model} in {smaller} of {len(rows)} "
            f"cases; the method that changes the comparison most is {label} (without it: {a:.2f} on {small.model}, "
            f"{b:.2f} on {large.model}). Kendall's τ between the two models' orders of the methods is {tau:+.2f}.")


def claim_larger_network(small: BenchSummary | None, large: BenchSummary | None) -> tuple[Verdict, list[Spread]]:
    """Claim 3: the spread of Δm across methods shrinks for the larger network."""
    if small is None or large is None:
        return Verdict(NOT_RUN, "The multilenet or the larger model's part has not finished."), []
    common = [m.method for m in finished(small) if by_name(large, m.method) is not None]
    if len(common) < 2:
        return Verdict(NOT_RUN, f"Fewer than two methods finished on both {small.model} and {large.model}: "
                                "no spread to compare."), []
    a, b = spread(small, common), spread(large, common)
    noise_level = max(a.mean_seed_std, b.mean_seed_std)
    seed_noise = (f"a method's seed standard deviation is {a.mean_seed_std:.2f} and {b.mean_seed_std:.2f} on "
                  "average" if math.isfinite(noise_level) else
                  "the seed noise is unknown: a method has fewer than two finished seeds")
    text = (f"Over the {len(common)} methods both finished, max − min of the mean test Δm is "
            f"{a.max_minus_min:.2f} points on {a.model} and {b.max_minus_min:.2f} on {b.model} ({seed_noise}).")
    text += per_seed_spreads(small, large, common)
    text += leave_one_out_spreads(small, large, common)
    if b.max_minus_min < a.max_minus_min - noise_level:
        return Verdict(CONFIRMED, text + " The spread shrinks by more than the seed noise."), [a, b]
    if b.max_minus_min > a.max_minus_min + noise_level:
        return Verdict(NOT_CONFIRMED, text + " The spread grows by more than the seed noise."), [a, b]
    direction = "shrinks" if b.max_minus_min < a.max_minus_min else "grows"
    return Verdict(MIXED, text + f" The spread {direction}, but by less than the seed noise."), [a, b]


@dataclass(frozen=True)
class PartSoFar:
    """An unfinished part scored from its runs stored so far (phase-1 counts; ``summary`` None before its STL)."""

    summary: BenchSummary | None
    finished: int
    total: int
    stl_finished: int
    stl_total: int


def part_so_far(study: Study, store: RunStore, name: str) -> PartSoFar:
    """Score an unfinished part with its own protocol from the runs the store holds, training nothing.

    ``run_bench`` runs with a ``run_many`` that answers only with stored runs, so the runs not finished yet read as
    failed. A method keeps its line only when every point of its searched-seed grid has finished: from a partial
    grid the protocol would select among whichever points happen to be done. Until every STL baseline has finished
    there is no Δm at all (``summary`` is None).
    """
    spec = study.bench_parts()[name].spec
    done = {run_id for run_id, status in store.statuses().items() if status == "finished"}
    phase1 = next(p for p in study.part_runs(None) if p.name == name).phase1_ids
    stl = {c.run_id() for per_lr in stl_configs(spec).values() for configs in per_lr for c in configs}
    counts = (len(phase1 & done), len(phase1), len(stl & done), len(stl))
    if not stl <= done:
        return PartSoFar(None, *counts)

    def stored(configs: list[RunConfig]) -> dict[str, RunResult]:
        results = {}
        for config in configs:
            result = store.get(config.run_id()) if config.run_id() in done else None
            if result is not None:
                results[config.run_id()] = result
        return results

    summary = run_bench(spec, stored)
    summary.methods = [m for m in summary.methods
                       if all(run_id in done for point in m.grid for run_id in point.run_ids)]
    return PartSoFar(summary, *counts)


def claim3_so_far(paper: BenchSummary, so_far: PartSoFar) -> list[str]:
    """The larger model's unfinished part in numbers, on the one seed its grids are searched on: not a verdict."""
    head = (f"**So far (not a verdict):** {so_far.finished} of the part's {so_far.total} grid-search runs (STL "
            "baselines and every method's grid, seed 0) have finished")
    summary = so_far.summary
    if summary is None:
        return [f"{head}; its STL baselines come first ({so_far.stl_finished} of {so_far.stl_total} finished), and "
                "no Δm exists before all of them have."]
    rows = [(m, by_name(paper, m.method)) for m in finished(summary)]
    lines = [f"{head}, among them the whole grid of {len(rows)} of the {len(paper.methods)} methods. Their selected "
             f"points, with test Δm on seed 0 only (seeds 1 and 2 of the selected points come after the grids):", "",
             f"| method | selected on {summary.model} | validation Δm | test Δm, seed 0 | {paper.model} test Δm, "
             "seed 0 |", "|---|---|---:|---:|---:|"]
    for large, small in rows:
        small_text = fmt(first_seed_delta_m(small)) if small is not None else "—"
        lines.append(f"| {large.label} | {selected_text(large)} | {large.selected.val_delta_m:+.2f} | "
                     f"{fmt(first_seed_delta_m(large))} | {small_text} |")
    both = [(first_seed_delta_m(a), first_seed_delta_m(b)) for a, b in rows if b is not None]
    both = [(a, b) for a, b in both if math.isfinite(a) and math.isfinite(b)]
    if len(both) >= 2:
        large_values, small_values = [a for a, _ in both], [b for _, b in both]
        lines += ["", f"Over these {len(both)} methods, max − min of the seed-0 test Δm is "
                      f"{max(small_values) - min(small_values):.2f} points on {paper.model} and "
                      f"{max(large_values) - min(large_values):.2f} on {summary.model}."]
    lines += ["", grid_edges(summary)]
    return lines


@dataclass(frozen=True)
class DecayGrid:
    """Validation Δm (first seed) of one method over learning rate × weight decay; NaN where a run is missing."""

    method: str
    lrs: list[float]
    weight_decays: list[float]
    val_delta_m: np.ndarray  # [weight decay, lr]
    test_delta_m: np.ndarray
    runs: int = 0
    cpu_seconds: float = 0.0
    failed: int = 0  # cells whose run failed (diverged): NaN for good, unlike a cell not run yet

    def range_over_lr(self) -> np.ndarray:
        return np.nanmax(self.val_delta_m, axis=1) - np.nanmin(self.val_delta_m, axis=1)

    def range_over_decay(self) -> np.ndarray:
        return np.nanmax(self.val_delta_m, axis=0) - np.nanmin(self.val_delta_m, axis=0)


def decay_grids(study: Study, store: RunStore, paper: BenchSummary) -> list[DecayGrid]:
    uwso = by_name(paper, "uwso")
    if uwso is None:
        return []
    configs = study.weight_decay_configs(float(uwso.selected.options["temperature"]))
    reference_val, reference_test = references(paper)
    lrs = sorted({c.lr for c in configs})
    decays = sorted({c.weight_decay for c in configs})
    grids = []
    for method in dict.fromkeys(c.method for c in configs):
        val = np.full((len(decays), len(lrs)), np.nan)
        test = np.full_like(val, np.nan)
        runs, cpu_seconds, failed = 0, 0.0, 0
        for config in (c for c in configs if c.method == method):
            result = store.get(config.run_id())
            if result is None:
                failed += store.status(config.run_id()) == "failed"
                continue
            runs, cpu_seconds = runs + 1, cpu_seconds + result.cpu_seconds
            record = selected_record(result, reference_val, paper.delta_m_variant)
            i, j = decays.index(config.weight_decay), lrs.index(config.lr)
            val[i, j] = score(record.val, reference_val, paper.higher_is_better, paper.delta_m_variant)
            test[i, j] = score(record.test, reference_test, paper.higher_is_better, paper.delta_m_variant)
        grids.append(DecayGrid(method, lrs, decays, val, test, runs, cpu_seconds, failed))
    return grids


def _decay_ranges(grids: Sequence[DecayGrid]) -> tuple[float, float, float]:
    """(mean range over lr, mean range over weight decay, range over weight decay at each method's best lr)."""
    over_lr = float(np.mean([g.range_over_lr().mean() for g in grids]))
    over_decay = float(np.mean([g.range_over_decay().mean() for g in grids]))
    best_lr_decay = float(np.mean([g.range_over_decay()[int(np.nanargmin(np.nanmin(g.val_delta_m, axis=0)))]
                                   for g in grids]))
    return over_lr, over_decay, best_lr_decay


def _decay_label(over_lr: float, over_decay: float, best_lr_decay: float) -> str:
    if over_decay <= over_lr / 2 and best_lr_decay <= over_lr / 2:
        return CONFIRMED
    return NOT_CONFIRMED if over_decay >= over_lr else MIXED


def without_lowest_lr(grid: DecayGrid) -> DecayGrid:
    return DecayGrid(grid.method, grid.lrs[1:], grid.weight_decays, grid.val_delta_m[:, 1:], grid.test_delta_m[:, 1:],
                     failed=grid.failed)


def claim_weight_decay(grids: Sequence[DecayGrid]) -> Verdict:
    """Claim 4: tuning the weight decay matters little next to tuning the learning rate.

    Checked twice: on the whole grid, and without its lowest learning rate (with three or more), which 50 epochs
    leave under-trained (the convergence measurement), so that an under-trained corner alone cannot make the
    learning rate look important. The verdict is "mixed" when the two disagree.
    """
    if not grids or any(int(np.isnan(g.val_delta_m).sum()) > g.failed for g in grids):
        return Verdict(NOT_RUN, "The weight-decay grid has not finished.")
    failed = sum(g.failed for g in grids)
    if any(np.isnan(g.val_delta_m).all(axis=0).any() or np.isnan(g.val_delta_m).all(axis=1).any() for g in grids):
        return Verdict(NOT_RUN, f"{failed} run(s) of the weight-decay grid failed, leaving a whole learning rate or "
                                "weight decay without a cell: no range to compare.")
    if any(len(g.lrs) < 2 or len(g.weight_decays) < 2 for g in grids):
        return Verdict(NOT_RUN, "The comparison needs at least two learning rates and two weight decays.")
    over_lr, over_decay, best_lr_decay = _decay_ranges(grids)
    label = _decay_label(over_lr, over_decay, best_lr_decay)
    text = (f"Validation Δm moves by {over_lr:.2f} points on average when the learning rate changes at a fixed "
            f"weight decay, and by {over_decay:.2f} when the weight decay changes at a fixed learning rate "
            f"({best_lr_decay:.2f} at each method's best learning rate); one seed per cell"
            + (f", {failed} failed cell(s) left out." if failed else "."))
    text += f' On the whole grid this reads "{label}"' + (
        ": the weight decay matters less, but not by a factor of two." if label == MIXED else ".")
    if all(len(g.lrs) >= 3 for g in grids):
        trimmed = [without_lowest_lr(g) for g in grids]
        lr_t, decay_t, best_t = _decay_ranges(trimmed)
        label_t = _decay_label(lr_t, decay_t, best_t)
        text += (f" Without lr {grids[0].lrs[0]:g} (under-trained in 50 epochs): {lr_t:.2f} over the learning rate, "
                 f"{decay_t:.2f} over the weight decay ({best_t:.2f} at the best learning rate), which reads "
                 f"\"{label_t}\".")
        if label_t != label:
            text += (" The two readings disagree: the learning rate dwarfs the weight decay only through the "
                     f"under-trained rate; among the other rates the weight decay moves Δm {decay_t:.2f} points "
                     f"against the learning rate's {lr_t:.2f}.")
            label = MIXED
    return Verdict(label, text)


def uw_init_verdict(paper: BenchSummary | None, by_init: Mapping[float, BenchSummary | None]) -> Verdict:
    """UW's known weakness: sensitivity to the initial log-variance."""
    results = {0.0: by_name(paper, "uw"), **{init: by_name(s, "uw") for init, s in by_init.items()}}
    if any(m is None for m in results.values()):
        return Verdict(NOT_RUN, "Not every UW initialisation has finished.")
    methods = [m for m in results.values() if m is not None]
    lowest = min(methods, key=lambda m: m.delta_m_mean)
    highest = max(methods, key=lambda m: m.delta_m_mean)
    text = "; ".join(f"init {init:+g}: {pm(m)} ({selected_text(m)})" for init, m in sorted(results.items())
                     if m is not None)
    if highest.delta_m_mean - lowest.delta_m_mean > noise(lowest, highest):
        return Verdict(CONFIRMED, f"UW's test Δm depends on its initial log-variance by more than the seed noise "
                                  f"({text}), even after the learning rate is tuned for each initialisation.")
    return Verdict(NOT_CONFIRMED, f"Once the learning rate is tuned for each initialisation, UW's test Δm does not "
                                  f"differ by more than the seed noise ({text}).")


# ------------------------------------------------------------------------------------------------------- rankings


def default_ranking(path: Path) -> list[str]:
    """The methods of the committed default benchmark (results.csv), best first."""
    with path.open() as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: int(row["rank"]))
    return [row["method"] for row in rows]


def study_ranking(paper: BenchSummary | None, brute: BenchSummary | None) -> list[str]:
    methods = [*(finished(paper) if paper else []), *([by_name(brute, "scalarization")] if brute else [])]
    return [m.method for m in sorted((m for m in methods if m is not None), key=lambda m: m.delta_m_mean)]


def trained_on(store: RunStore) -> dict[str, int]:
    """``device (name), torch version`` → number of finished runs that trained there, most runs first."""
    counts: dict[str, int] = {}
    for (environment,) in store.connection.execute("SELECT environment FROM runs WHERE status = 'finished'"):
        where = json.loads(environment) if environment else {}
        place = (f"{where.get('device', 'unknown device')} ({where.get('device_name') or '?'}), "
                 f"torch {where.get('torch') or '?'}")
        counts[place] = counts.get(place, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


# ---------------------------------------------------------------------------------------------------------- plots


def plot_models(summaries: Sequence[BenchSummary], path: Path) -> Path:
    """Test Δm (mean ± std over seeds) per method, one bar per model size."""
    methods = [m.method for m in finished(summaries[0])]
    labels = {m.method: m.label for s in summaries for m in s.methods}
    figure = Figure(figsize=(7.0, 1.2 + 0.45 * len(methods) * len(summaries)), dpi=DPI)
    axes = figure.subplots()
    height = 0.8 / len(summaries)
    colours = ("#264653", "#e9c46a", "#2a9d8f")
    for k, summary in enumerate(summaries):
        rows = [(i, by_name(summary, name)) for i, name in enumerate(methods)]
        rows = [(i, m) for i, m in rows if m is not None]
        axes.barh([i + k * height for i, _ in rows], [m.delta_m_mean for _, m in rows], height=height,
                  xerr=[m.delta_m_std for _, m in rows], color=colours[k % len(colours)], label=summary.model,
                  capsize=2)
    axes.set_yticks([i + height * (len(summaries) - 1) / 2 for i in range(len(methods))],
                    [labels[m] for m in methods])
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel(f"test Δm (%), lower is better; mean ± std over {len(summaries[0].seeds)} seeds")
    axes.legend(loc="best")
    figure.subplots_adjust(left=0.16, right=0.97, top=0.97, bottom=0.45 / (1.2 + 0.45 * len(methods)))
    figure.savefig(path)
    return path


def plot_compute(methods: Sequence[MethodSummary], path: Path) -> Path:
    """Test Δm against the CPU time spent on each method (its grid search and seeds), log scale."""
    figure = Figure(figsize=(7.0, 4.2), dpi=DPI)
    axes = figure.subplots()
    hours = [m.cpu_seconds / 3600 for m in methods]
    axes.errorbar(hours, [m.delta_m_mean for m in methods], yerr=[m.delta_m_std for m in methods], fmt="o",
                  color="#264653", capsize=2)
    for x, m in zip(hours, methods, strict=True):
        axes.annotate(m.label, (x, m.delta_m_mean), textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("CPU-hours spent on the method (grid search + seeds)")
    axes.set_ylabel("test Δm (%)")
    axes.axhline(0, color="black", linewidth=0.8)
    figure.subplots_adjust(left=0.11, right=0.97, top=0.96, bottom=0.13)
    figure.savefig(path)
    return path


def plot_simplex(points: Sequence[SimplexPoint], tasks: Sequence[str], path: Path) -> Path:
    """Scalarization's validation Δm over its weight simplex (first seed), one panel per learning rate: a point per
    weight vector at (w of the first task, w of the second); the third task's weight is what is left to 1."""
    lrs = sorted({p.lr for p in points})
    figure = Figure(figsize=(4.4 * len(lrs), 4.2), dpi=DPI)
    panels = figure.subplots(1, len(lrs), squeeze=False)[0]
    best = min(points, key=lambda p: p.val_delta_m)
    for axes, lr in zip(panels, lrs, strict=True):
        shown = [p for p in points if p.lr == lr]
        values = np.array([p.val_delta_m for p in shown])
        image = axes.scatter([p.weights[0] for p in shown], [p.weights[1] for p in shown], c=values,
                             cmap="RdYlGn_r", marker="s", s=260)
        for p in shown:
            axes.text(p.weights[0], p.weights[1], f"{p.val_delta_m:+.1f}", ha="center", va="center", fontsize=6)
        if best.lr == lr:
            axes.plot([best.weights[0]], [best.weights[1]], marker="s", markersize=18, markerfacecolor="none",
                      markeredgecolor="black", linestyle="none")
        axes.plot([0, 1, 0, 0], [0, 0, 1, 0], color="0.75", linewidth=0.8)  # the simplex's edges
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_aspect("equal")
        axes.set_xlabel(f"weight of {tasks[0]}")
        axes.set_ylabel(f"weight of {tasks[1]}")
        axes.set_title(f"lr {lr:g}: validation Δm (%), seed 0", fontsize=9)
        figure.colorbar(image, ax=axes, shrink=0.8)
    figure.subplots_adjust(left=0.07, right=0.97, top=0.92, bottom=0.12, wspace=0.3)
    figure.savefig(path)
    return path


def plot_trade_off(points: Sequence[SimplexPoint], methods: Mapping[str, Mapping[str, float]],
                   summary: BenchSummary, path: Path) -> Path:
    """Test trade-off on the first seed: the Δm terms of the last task's metrics (y) against those of the other
    tasks (x), for every Scalarization weight vector at its best learning rate (their non-dominated points drawn as
    the front) and each method's selected run. A method on or below the front matches the best fixed weighting at
    its trade-off."""
    _, reference_test = references(summary)
    keys = [k for k in summary.metric_keys if k in reference_test]
    groups = task_groups(keys)
    *others, last = groups

    def xy(metrics: Mapping[str, float]) -> tuple[float, float]:
        def term(names: Sequence[str]) -> float:
            return delta_m({k: metrics[k] for k in names}, {k: summary.baseline_test[k] for k in names},
                           {k: summary.higher_is_better[k] for k in names})
        return term([k for task in others for k in groups[task]]), term(groups[last])

    # Each weight vector at its own best learning rate (by validation Δm), as a tuned fixed weighting would be used;
    # only the vectors whose every learning rate has run, so that a half-run grid shows no untuned point.
    lrs = {p.lr for p in points}
    runs_of: dict[tuple[float, ...], list[SimplexPoint]] = {}
    for point in points:
        if point.test_metrics:
            runs_of.setdefault(point.weights, []).append(point)
    tuned = {weights: min(runs, key=lambda p: p.val_delta_m) for weights, runs in runs_of.items()
             if {p.lr for p in runs} == lrs}
    figure = Figure(figsize=(7.0, 5.0), dpi=DPI)
    axes = figure.subplots()
    grid = np.array([xy(p.test_metrics) for p in tuned.values()])
    if len(grid):
        axes.scatter(grid[:, 0], grid[:, 1], s=14, color="0.65",
                     label=f"Scalarization: {len(grid)} weight vectors, each at its best lr")
        front, best_y = [], math.inf
        for x, y in sorted(map(tuple, grid)):
            if y < best_y:
                front.append((x, y))
                best_y = y
        axes.plot(*zip(*front, strict=True), color="0.4", linewidth=1, label="its non-dominated front")
    offsets = ((5, 4), (5, -10), (-34, 4), (-34, -10))  # neighbours' labels do not print over each other
    for i, (label, (x, y)) in enumerate(sorted(((label, xy(m)) for label, m in methods.items()),
                                               key=lambda item: item[1])):
        axes.plot([x], [y], marker="o", linestyle="none", color=BETTER if label == "UW-SO" else "#264653")
        axes.annotate(label, (x, y), textcoords="offset points", xytext=offsets[i % len(offsets)], fontsize=8)
    axes.axhline(0, color="black", linewidth=0.6)
    axes.axvline(0, color="black", linewidth=0.6)
    axes.set_xlabel(f"Δm over {', '.join(others)} (%), test, seed 0")
    axes.set_ylabel(f"Δm over {last} (%), test, seed 0")
    axes.legend(loc="best", fontsize=8)
    figure.subplots_adjust(left=0.11, right=0.97, top=0.96, bottom=0.11)
    figure.savefig(path)
    return path


def plot_decay(grids: Sequence[DecayGrid], labels: Mapping[str, str], path: Path) -> Path:
    """Heat maps of validation Δm over learning rate × weight decay, one per method."""
    figure = Figure(figsize=(4.6 * len(grids), 3.8), dpi=DPI)
    panels = figure.subplots(1, len(grids), squeeze=False)[0]
    for axes, grid in zip(panels, grids, strict=True):
        image = axes.imshow(grid.val_delta_m, cmap="RdYlGn_r", aspect="auto")
        for (i, j), value in np.ndenumerate(grid.val_delta_m):
            axes.text(j, i, "—" if np.isnan(value) else f"{value:+.1f}", ha="center", va="center", fontsize=9)
        axes.set_xticks(range(len(grid.lrs)), [f"{lr:g}" for lr in grid.lrs])
        axes.set_yticks(range(len(grid.weight_decays)), [f"{wd:g}" for wd in grid.weight_decays])
        axes.set_xlabel("learning rate")
        axes.set_ylabel("weight decay")
        axes.set_title(f"{labels.get(grid.method, grid.method)}: validation Δm (%)")
        figure.colorbar(image, ax=axes)
    figure.subplots_adjust(left=0.1, right=0.95, top=0.9, bottom=0.15, wspace=0.35)
    figure.savefig(path)
    return path


def plot_temperature(uwso: MethodSummary, path: Path) -> Path:
    """UW-SO's validation Δm (first seed) against its temperature, one line per learning rate."""
    figure = Figure(figsize=(7.0, 4.2), dpi=DPI)
    axes = figure.subplots()
    for lr in sorted({p.lr for p in uwso.grid}):
        points = sorted((p.options["temperature"], p.val_delta_m) for p in uwso.grid if p.lr == lr)
        axes.plot([t for t, _ in points], [v for _, v in points], marker="o", label=f"lr {lr:g}")
    axes.plot([uwso.selected.options["temperature"]], [uwso.selected.val_delta_m], marker="*", markersize=14,
              color=BETTER, linestyle="none", label="selected")
    axes.set_xscale("log")
    axes.set_xlabel("temperature T")
    axes.set_ylabel("validation Δm (%), seed 0")
    axes.legend(loc="best")
    figure.subplots_adjust(left=0.11, right=0.97, top=0.96, bottom=0.13)
    figure.savefig(path)
    return path


WEIGHT_PANELS = (("uw-init-2", "uw", "UW, initial s = −2"), ("multilenet", "uw", "UW, initial s = 0"),
                 ("uw-init+2", "uw", "UW, initial s = +2"), ("multilenet", "uwso", "UW-SO"))
"""(part, method, panel title) of the weights-over-training plot."""


def plot_weights_over_training(runs: Mapping[str, RunResult], path: Path) -> Path:
    """Each run's logged task weights against the training step, one panel per run (log scale)."""
    figure = Figure(figsize=(3.3 * len(runs), 3.4), dpi=DPI)
    panels = figure.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    for axes, (title, result) in zip(panels, runs.items(), strict=True):
        weights = np.array(result.step_weights)
        for k, task in enumerate(result.tasks):
            axes.plot(result.steps, weights[:, k], label=task)
        axes.set_yscale("log")
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("training step")
    panels[0].set_ylabel("task weight")
    panels[0].legend(loc="best", fontsize=8)
    figure.subplots_adjust(left=0.07, right=0.99, top=0.88, bottom=0.16, wspace=0.08)
    figure.savefig(path)
    return path


def selected_seed0_run(store: RunStore, method: MethodSummary | None) -> RunResult | None:
    """The first-seed run of a method's selected point (the one its grid search trained), if it is stored."""
    if method is None or not method.selected.run_ids:
        return None
    return store.get(method.selected.run_ids[0])


# --------------------------------------------------------------------------------------------------------- report


def method_table(summary: BenchSummary) -> list[str]:
    lines = ["| rank | method | selected | validation Δm | test Δm (mean ± std) | per seed | runs | CPU-h |",
             "|---:|---|---|---:|---:|---|---:|---:|"]
    for m in summary.methods:
        if m.failed:
            lines.append(f"| — | {m.label} | failed | | | | {m.runs} | {m.cpu_seconds / 3600:.2f} |")
            continue
        seeds = ", ".join(f"{v:+.2f}" for v in m.delta_m_per_seed)
        lines.append(f"| {m.rank} | {m.label} | {selected_text(m)} | {m.selected.val_delta_m:+.2f} | {pm(m)} | "
                     f"{seeds} | {m.runs} | {m.cpu_seconds / 3600:.2f} |")
    return lines


def metric_terms_table(summary: BenchSummary) -> list[str]:
    """Per method, each metric's term of Δm, (−1)^h·(M − M_STL)/M_STL·100 of its seed-mean test value: where a
    method's Δm comes from (negative: better than the single-task model on that metric)."""
    _, reference_test = references(summary)
    keys = [k for k in summary.metric_keys if k in reference_test]
    lines = ["| method | " + " | ".join(f"{k} {'↑' if summary.higher_is_better[k] else '↓'}" for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for m in finished(summary):
        terms = [delta_m({k: m.metrics_mean[k]}, {k: summary.baseline_test[k]}, {k: summary.higher_is_better[k]})
                 for k in keys]
        lines.append(f"| {m.label} | " + " | ".join(f"{t:+.2f}" for t in terms) + " |")
    return lines


def baseline_table(summary: BenchSummary) -> list[str]:
    lines = ["| metric | STL validation | STL test |", "|---|---:|---:|"]
    for key in summary.metric_keys:
        val, test = summary.baseline_val.get(key, math.nan), summary.baseline_test.get(key, math.nan)
        lines.append(f"| {key} | {val:.4f} | {test:.4f} |")
    return lines


def write_study_report(study: Study, out_dir: Path, default_csv: Path) -> Path:
    """Write ``STUDY.md`` and its plots into ``out_dir`` from ``study.committed``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunStore(study.committed) as store:
        summaries = {name: read_summary(store, name) for name in store.summary_names()}
        statuses = store.statuses()
        paper = summaries.get("multilenet")
        brute = summaries.get("scalarization")
        large = summaries.get("small_cnn")
        larger_so_far = part_so_far(study, store, "small_cnn") if large is None and paper is not None else None
        grids = decay_grids(study, store, paper) if paper is not None else []
        simplex, simplex_total = simplex_points(study, store, paper) if paper is not None else ([], 0)
        method_metrics = first_seed_test_metrics(store, paper) if paper is not None else {}
        places = trained_on(store)
        cpu_hours, wall_hours = (value / 3600 for value in store.connection.execute(
            "SELECT COALESCE(SUM(cpu_seconds), 0), COALESCE(SUM(wall_seconds), 0) FROM runs WHERE status = 'finished'"
        ).fetchone())
        weight_runs: dict[str, RunResult] = {}
        for part, method, title in WEIGHT_PANELS:
            chosen = by_name(summaries.get(part), method)
            run = selected_seed0_run(store, chosen)
            if run is not None and run.step_weights and chosen is not None:
                weight_runs[f"{title} (lr {chosen.selected.lr:g})"] = run
    labels = {name: method_registry.label(name) for name in method_registry.names()}
    spec = study.spec()
    text: list[str] = [
        "# The converged reproduction of Kirchdorfer et al. 2024 on MultiFashion",
        "",
        "Generated by `python scripts/reproduction.py report` from the committed store "
        "`study/results.sqlite`; `taskbalance report` renders each part's table from the same store.",
        "",
        "## Setup",
        "",
        f"* `taskbalance bench --preset reproduction`: embedded MultiFashion (10,000 / 2,000 / 2,000 samples, tasks "
        f"{', '.join(spec.trained_tasks)}), `{spec.run.model}`, Adam, weight decay {spec.run.weight_decay:g}, batch "
        f"{spec.run.batch_size}, {spec.run.epochs} epochs, learning rate halved at epoch {spec.run.lr_step} (both "
        "from the convergence measurement in README.md).",
        f"* Learning-rate grid {spec.lrs} for every method and for the single-task (STL) baselines; UW-SO's "
        f"temperature grid {spec.temperatures}; Scalarization's full simplex (step {spec.simplex_step:g}, every "
        f"weight ≥ {spec.simplex_min_weight:g}); seeds {spec.seeds}.",
        "* Selection by validation Δm (the epoch of each run, then the grid point), test Δm reported as mean ± std "
        "over the seeds.",
        "* **Cut to fit 2 CPU cores:** each method's grid is searched on seed 0 and only the selected point is run "
        "on seeds 1 and 2 (the paper runs every grid point on every seed); the STL baselines run every learning "
        "rate on every seed. The weight-decay grid is one seed per cell. The larger model is `small_cnn` (14× "
        "multilenet's shared parameters), not the paper's DeepLabV3+; its part searches lr {1e-3, 1e-2} and T {1, 3, "
        "5, 10, 20}, with its encoder in channels-last memory format (0.72× the step time here, results equal up "
        "to rounding).",
        "* **UW differs from the paper's:** UW here uses each task's likelihood form (Kendall et al. 2018: no ½ on "
        "the cross-entropy tasks) and starts from log-variance 0; the paper compares against LibMTL's UW, the "
        "regression form for every task from −0.5. Both settle on the weights 1/(2·L_k); they start from different "
        "ones (1, 1 and ½ here, ≈ 0.82 for every task there). The `uw-init` parts start from −2 and +2.",
        "",
        f"Runs in the store: {sum(1 for s in statuses.values() if s == 'finished')} finished, "
        f"{sum(1 for s in statuses.values() if s == 'running')} queued or training when the snapshot was taken, "
        f"{sum(1 for s in statuses.values() if s == 'failed')} failed. Parts finished: "
        f"{', '.join(sorted(summaries)) or 'none'}. Compute of the finished runs: {cpu_hours:.1f} CPU-hours, "
        f"{wall_hours:.1f} hours of the runs' wall times summed.",
        "",
        "Where the finished runs trained (a run id does not depend on the device, so runs of one study may come "
        "from several machines; a run repeated on another device is the same experiment but not bit-identical, since "
        "its kernels round differently): "
        + ("; ".join(f"{place}: {count}" for place, count in places.items()) or "none yet") + ".",
        "",
    ]
    plots: dict[str, str] = {}

    text += ["## Claim 1: UW-SO outperforms EW, UW, DWA, RLW, IMTL-L and GLS", ""]
    if paper is not None:
        text += [*method_table(paper), "", *(f"* {note}" for note in paper.notes), "", grid_edges(paper), ""]
        text += ["STL baselines (mean over seeds at each seed's selected epoch, per task its best learning rate):",
                 "", *baseline_table(paper), ""]
        text += ["Where each method's Δm comes from: each metric's term, the relative change (%) of its seed-mean "
                 "test value against the STL baseline, signed so that negative is better (Δm is "
                 + ("their mean):" if paper.delta_m_variant == "all_metrics" else
                    "the mean over tasks of each task's mean term):"), "", *metric_terms_table(paper), ""]
    text += [claim_uwso_best(paper).line(), ""]
    seed_gap = searched_seed_gap(paper) if paper is not None else ""
    if seed_gap:
        text += [seed_gap, ""]

    text += ["## Claim 2: UW-SO comes close to the best brute-force Scalarization at a fraction of its cost", ""]
    scalarization = by_name(brute, "scalarization")
    if brute is not None:
        text += [*method_table(brute), "", grid_edges(brute), ""]
    if paper is not None:
        compute = [*finished(paper), *([scalarization] if scalarization else [])]
        plots["compute"] = plot_compute(compute, out_dir / "study_compute.png").name
        text += [f"![test Δm against compute]({plots['compute']})", ""]
        if simplex:
            plots["simplex"] = plot_simplex(simplex, spec.trained_tasks, out_dir / "study_simplex.png").name
            text += [f"![Scalarization's validation Δm over its weight simplex]({plots['simplex']})", "",
                     f"Scalarization's grid search over the weights of {', '.join(spec.trained_tasks)} (the third "
                     "weight is 1 minus the other two; framed: the best point by validation Δm).", ""]
            plots["trade_off"] = plot_trade_off(simplex, method_metrics, paper, out_dir / "study_trade_off.png").name
            text += [f"![test trade-off between the tasks]({plots['trade_off']})", "",
                     "The same weight vectors, each at its best learning rate by validation Δm, on the test split "
                     "against the methods' selected runs (seed 0 for all): each axis is Δm over one group of tasks, "
                     "so a point below and left of Scalarization's front would beat every fixed weighting at its "
                     "own trade-off.", ""]
        if brute is None:
            text += [scalarization_so_far(simplex, simplex_total, by_name(paper, "uwso")), ""]
    text += [claim_close_to_scalarization(paper, brute).line(), ""]

    text += ["## Claim 3: larger networks diminish the influence of the weighting method", ""]
    verdict3, spreads = claim_larger_network(paper, large)
    if large is None and larger_so_far is not None and paper is not None:
        text += [*claim3_so_far(paper, larger_so_far), ""]
    if large is not None:
        text += [f"`{large.model}`:", "", *method_table(large), "", *(f"* {note}" for note in large.notes), "",
                 grid_edges(large), "",
                 f"STL baselines on `{large.model}` (as in claim 1):", "", *baseline_table(large), "",
                 "Each metric's term of Δm (as in claim 1):", "", *metric_terms_table(large), ""]
    if spreads:
        text += ["| model | methods | max − min of mean Δm | std over methods | mean seed std |",
                 "|---|---:|---:|---:|---:|"]
        text += [f"| {s.model} | {s.methods} | {s.max_minus_min:.2f} | {s.std_over_methods:.2f} | "
                 f"{s.mean_seed_std:.2f} |" for s in spreads]
        text += ["", grid_containment(paper, large), ""] if paper is not None and large is not None else [""]
    if paper is not None:
        shown = [s for s in (paper, large) if s is not None]
        plots["models"] = plot_models(shown, out_dir / "study_models.png").name
        text += [f"![test Δm per method and model]({plots['models']})", ""]
    text += [verdict3.line(), ""]

    text += ["## Claim 4: tuning weight decay matters little compared to the learning rate", ""]
    if grids:
        plots["decay"] = plot_decay(grids, labels, out_dir / "study_weight_decay.png").name
        text += [f"![validation Δm over learning rate and weight decay]({plots['decay']})", ""]
        for grid in grids:
            text += [f"{labels.get(grid.method, grid.method)}, test Δm at each cell's selected epoch (seed 0): "
                     + "; ".join(f"wd {wd:g}: " + ", ".join(f"lr {lr:g} {fmt(grid.test_delta_m[i, j])}"
                                                            for j, lr in enumerate(grid.lrs))
                                 for i, wd in enumerate(grid.weight_decays)), ""]
        text += ["Runs: " + "; ".join(f"{labels.get(g.method, g.method)} {g.runs} ({g.cpu_seconds / 3600:.2f} CPU-h)"
                                      for g in grids)
                 + f" — the weight decay {spec.run.weight_decay:g} cells are the multilenet part's seed-0 grid runs.",
                 ""]
    text += [claim_weight_decay(grids).line(), ""]

    text += ["## UW's sensitivity to its initial log-variance (Kendall et al. 2018)", ""]
    by_init = {float(name.removeprefix("uw-init")): summaries.get(name) for name in ("uw-init-2", "uw-init+2")}
    rows = [(0.0, by_name(paper, "uw")), *((init, by_name(s, "uw")) for init, s in by_init.items())]
    text += ["| initial log-variance | selected | validation Δm per lr (seed 0) | test Δm | per seed | runs | CPU-h |",
             "|---:|---|---|---:|---|---:|---:|"]
    for init, m in rows:
        if m is None:
            text.append(f"| {init:+g} | not run yet | | | | | |")
            continue
        per_lr = ", ".join(f"{p.lr:g}: {p.val_delta_m:+.2f}" for p in sorted(m.grid, key=lambda p: p.lr))
        seeds = ", ".join(f"{v:+.2f}" for v in m.delta_m_per_seed)
        text.append(f"| {init:+g} | {selected_text(m)} | {per_lr} | {pm(m)} | {seeds} | {m.runs} | "
                    f"{m.cpu_seconds / 3600:.2f} |")
    text += ["", uw_init_verdict(paper, by_init).line(), ""]
    if weight_runs:
        plots["weights"] = plot_weights_over_training(weight_runs, out_dir / "study_uw_weights.png").name
        text += [f"![task weights over training]({plots['weights']})", "",
                 "Task weights over training (seed 0, each panel the selected learning rate): UW's weights "
                 "(∝ exp(−s_k)) move away from their initial value by gradient steps on s_k, so a start far from where "
                 "they settle takes many steps to undo (the inertia Kirchdorfer et al. 2024 show in their Figure 1); "
                 "UW-SO's weights are computed from the current losses at every step.", ""]

    text += ["## UW-SO's temperature", ""]
    uwso = by_name(paper, "uwso")
    if uwso is not None:
        plots["temperature"] = plot_temperature(uwso, out_dir / "study_temperature.png").name
        temperatures = sorted({p.options["temperature"] for p in uwso.grid})
        chosen = uwso.selected.options["temperature"]
        edge = chosen in (temperatures[0], temperatures[-1])
        text += [f"![UW-SO's validation Δm against T]({plots['temperature']})", "",
                 f"Selected T = {chosen:g} at lr {uwso.selected.lr:g} from {temperatures}."
                 + (" **It sits at an edge of the grid: the grid has to be extended past it.**" if edge else
                    " It is inside the grid, so the grid needs no extension."), ""]
        uwo = by_name(paper, "uwo")
        if uwo is not None:
            text += [softmax_effect(uwso, uwo), ""]
    else:
        text += ["Not run yet.", ""]

    text += ["## The default benchmark against the study", ""]
    if paper is not None and default_csv.exists():
        default = default_ranking(default_csv)
        ranking = study_ranking(paper, brute)
        common = common_items(ranking, default)
        tau = kendall_tau(ranking, default)
        text += [f"Study ranking (best first): {', '.join(labels.get(m, m) for m in ranking)}.",
                 f"Default `taskbalance bench` ranking ({default_csv.name}): "
                 f"{', '.join(labels.get(m, m) for m in default)}.",
                 f"Kendall's τ over the {len(common)} methods both rank: **{tau:+.2f}**"
                 + (" (the same order)." if tau == 1 else " — the default benchmark's ranking is not the study's."),
                 ""]
    else:
        text += ["Not run yet.", ""]
    report = out_dir / "STUDY.md"
    report.write_text("\n".join(text))
    return report

