"""Δm against published numbers: ``delta_m`` reproduces the Δm column of published MTL tables from their metrics.

Each case takes one method row of a published table and its STL row (Nash-MTL Tables 2 and 3, FAMO Tables 1 and 3,
NTKMTL Tables 1 and 7, and the Adam rows of Elich et al. 2024 Tables A4-A7; the sources, where they were read and
the per-table tolerances are in ``published_tables.py``), computes Δm = 100/N · Σ_i (−1)^{h_i} (M_i − B_i)/B_i
over the table's N metrics with :func:`taskbalance.protocol.delta_m.delta_m`, and compares it with the printed Δm:
to ±0.05 where the table's rounding permits, else to the table's measured tolerance, which must stay within what
the printed digits can explain. The published values have both signs and the NYUv2 tables have tasks with 2, 2
and 5 metrics, so a flipped sign convention or an average per task instead of per metric fails here (checked
explicitly too). One published row does not reproduce; it is tested for its measured discrepancy instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
from published_tables import (
    CITYSCAPES_HIGHER,
    CITYSCAPES_METRICS,
    NASHMTL_NYUV2,
    NASHMTL_NYUV2_IMTLG,
    NYUV2_HIGHER,
    NYUV2_METRICS,
    TABLES,
    Row,
    Table,
)

from taskbalance.protocol.delta_m import delta_m, delta_m_per_task
from taskbalance.tasks import Depth, SemanticSegmentation, SurfaceNormals


def _slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


CASES = [pytest.param(table, row, id=f"{table.name}-{_slug(row.method)}") for table in TABLES for row in table.rows]


def _mappings(table: Table, row: Row) -> tuple[dict[str, float], dict[str, float], dict[str, bool]]:
    """The row's metrics, the STL baseline and the directions, keyed by the table's ``"task/metric"`` names."""
    metrics = dict(zip(table.metrics, map(float, row.values), strict=True))
    baseline = dict(zip(table.metrics, map(float, table.stl), strict=True))
    higher = dict(zip(table.metrics, table.higher_is_better, strict=True))
    return metrics, baseline, higher


def _tasks(metric_names: Sequence[str]) -> dict[str, list[str]]:
    """``"task/metric"`` names grouped by task, for the per-task variant."""
    tasks: dict[str, list[str]] = {}
    for name in metric_names:
        tasks.setdefault(name.split("/")[0], []).append(name)
    return tasks


def _half_unit(printed: str) -> float:
    """Half a unit in the last printed digit: 0.005 for ``"25.01"``, 0.00005 for ``"0.0125"``."""
    return float(Decimal(1).scaleb(Decimal(printed).as_tuple().exponent)) / 2


def _rounding_bound(table: Table, row: Row) -> float:
    """The most that the rounding of the printed row, STL row and Δm can account for between Δm and the column.

    Each metric's term (−1)^h·(M − B)/B·100 is monotone in M and in B, so its extremes over M ± half a unit and
    B ± half a unit lie at the corners; the bound sums the worst corner of every term.
    """
    total = 0.0
    for value, base, higher in zip(row.values, table.stl, table.higher_is_better, strict=True):
        m, b, dm, db = float(value), float(base), _half_unit(value), _half_unit(base)
        sign = -1.0 if higher else 1.0
        nominal = sign * (m - b) / b * 100
        total += max(abs(sign * (mm - bb) / bb * 100 - nominal) for mm in (m - dm, m + dm) for bb in (b - db, b + db))
    return total / len(row.values) + _half_unit(row.delta_m)


@pytest.mark.parametrize(("table", "row"), CASES)
def test_published_delta_m_is_reproduced(table: Table, row: Row) -> None:
    metrics, baseline, higher = _mappings(table, row)
    # A tolerance wider than ±0.05 must be one the table's printed digits can explain, never wider.
    assert table.tolerance <= max(0.05, _rounding_bound(table, row))
    assert delta_m(metrics, baseline, higher) == pytest.approx(float(row.delta_m), abs=table.tolerance)


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_the_published_column_rules_out_other_conventions(table: Table) -> None:
    """Flipped directions miss every published Δm, and so does the per-task average on NYUv2.

    On CityScapes both tasks have two metrics, so the per-task and all-metrics averages coincide there.
    """
    tasks = _tasks(table.metrics)
    flipped_misses = per_task_misses = 0
    for row in table.rows:
        metrics, baseline, higher = _mappings(table, row)
        published = float(row.delta_m)
        flipped = {name: not h for name, h in higher.items()}
        flipped_misses += abs(delta_m(metrics, baseline, flipped) - published) > table.tolerance
        per_task_misses += abs(delta_m_per_task(metrics, baseline, higher, tasks) - published) > table.tolerance
    assert flipped_misses == len(table.rows)
    assert per_task_misses == (len(table.rows) if table.metrics == NYUV2_METRICS else 0)


def test_nashmtl_nyuv2_imtlg_row_does_not_give_its_published_delta_m() -> None:
    """Nash-MTL Table 2's IMTL-G row gives −0.600, not its printed −0.76 (see ``published_tables.py``).

    The gap is more than three times what the rounding of the printed digits can explain, and the per-task
    variant (−4.77) is no closer: the row is left out of the reproduction cases, with this measured discrepancy.
    """
    metrics, baseline, higher = _mappings(NASHMTL_NYUV2, NASHMTL_NYUV2_IMTLG)
    got = delta_m(metrics, baseline, higher)
    assert got == pytest.approx(-0.600, abs=0.005)
    published = float(NASHMTL_NYUV2_IMTLG.delta_m)
    assert abs(got - published) > 3 * _rounding_bound(NASHMTL_NYUV2, NASHMTL_NYUV2_IMTLG)
    assert delta_m_per_task(metrics, baseline, higher, _tasks(NYUV2_METRICS)) == pytest.approx(-4.77, abs=0.01)


def test_table_keys_and_directions_are_the_tasks_metrics() -> None:
    """The tables' "task/metric" keys and header arrows are those of taskbalance's NYUv2 and CityScapes tasks."""
    nyuv2 = [SemanticSegmentation("seg", num_classes=13), Depth("depth"), SurfaceNormals("normal")]
    cityscapes = [SemanticSegmentation("seg", num_classes=7), Depth("depth")]
    for tasks, names, higher in (
        (nyuv2, NYUV2_METRICS, NYUV2_HIGHER),
        (cityscapes, CITYSCAPES_METRICS, CITYSCAPES_HIGHER),
    ):
        expected = {f"{t.name}/{m.name}": m.higher_is_better for t in tasks for m in t.metrics}
        assert dict(zip(names, higher, strict=True)) == expected
