"""write_report, the tables and the plots, on a synthetic benchmark whose numbers were chosen by hand."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from synthetic_bench import build, make_run

from taskbalance.report import markdown_table, render_table, write_report
from taskbalance.report.plots import DPI, to_ternary, weights_panel_title
from taskbalance.report.writer import mean_weights
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig

# Rank order with hand-computed Δm: UW-SO seeds (−4, −2) → −3 ± 1; Scalarization (−1.5, −0.5) → −1 ± 0.5;
# EW (2, 2) → 2 ± 0; RLW (3, 6) → 4.5 ± 1.5.
EXPECTED_ROWS = [
    "| 1 | UW-SO | -3.00 ± 1.00 | 0.8100 | 0.7900 | 0.1234 | 6 | 120 |",
    "| 2 | Scalarization | -1.00 ± 0.50 | 0.8000 | 0.7800 | 0.1300 | 37 | 740 |",
    "| 3 | EW | +2.00 ± 0.00 | 0.7700 | 0.7600 | 0.1400 | 2 | 42 |",
    "| 4 | RLW | +4.50 ± 1.50 | 0.7500 | 0.7400 | 0.1510 | 2 | 39 |",
]


@pytest.fixture
def bench(tmp_path: Path):
    store = RunStore(tmp_path / "results.sqlite")
    summary = build(store)
    yield store, summary
    store.close()


def test_markdown_table_rows_are_in_rank_order_with_the_right_numbers(bench) -> None:
    _, summary = bench
    summary.methods.reverse()  # the table sorts by rank itself
    lines = markdown_table(summary).splitlines()
    assert lines[0] == "| rank | method | Δm % (mean ± std) | left/acc ↑ | right/acc ↑ | dense/l1 ↓ | runs | CPU-s |"
    assert lines[2:] == EXPECTED_ROWS


def test_rich_table_has_the_same_columns_and_rows(bench) -> None:
    _, summary = bench
    table = render_table(summary)
    assert [c.header for c in table.columns] == ["rank", "method", "Δm % (mean ± std)", "left/acc ↑", "right/acc ↑",
                                                 "dense/l1 ↓", "runs", "CPU-s"]
    assert table.row_count == 4
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    order = [text.index(label) for label in ("UW-SO", "Scalarization", "EW ", "RLW")]
    assert order == sorted(order)
    assert "-3.00 ± 1.00" in text and "0.1234" in text and "740" in text


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_write_report_writes_every_file(bench, tmp_path: Path) -> None:
    store, _ = bench
    failed = RunConfig(method="gls", seed=9)
    store.mark_failed(failed, "Traceback (most recent call last):\nValueError: loss of task 'dense' is 0")
    out = tmp_path / "report"
    report = write_report(store, out)
    assert report == out / "report.md"
    assert sorted(p.name for p in out.iterdir()) == ["compute.png", "delta_m.png", "report.md", "results.csv",
                                                     "simplex.png", "weights.png"]
    text = report.read_text()
    assert "\n".join(EXPECTED_ROWS) in text
    assert "| UW-SO | `{\"temperature\": 5.0}` | 0.001 | -2.50 | seed 0 -4.00, seed 1 -2.00 |" in text
    assert "| dense/l1 ↓ | 0.1300 | 0.1350 |" in text
    for name in ("delta_m", "compute", "weights", "simplex"):
        assert f"![{name}]({name}.png)" in text
    assert "8 finished, 0 unfinished, 1 failed" in text
    assert f"- failed `{failed.run_id()}`: ValueError: loss of task 'dense' is 0" in text

    # Pixel sizes from the documented figure sizes (inches × DPI): 4 methods → weights in 3 columns × 2 rows.
    sizes = {"delta_m": (7.0, 1.2 + 0.5 * 4), "compute": (11.0, 4.2), "weights": (4.2 * 3, 3.0 * 2 + 0.6),
             "simplex": (7.0, 5.2)}
    for name, (width, height) in sizes.items():
        pixels = png(out / f"{name}.png")
        assert pixels.shape == (round(height * DPI), round(width * DPI), 3), name
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, f"{name}.png looks empty"
    # The simplex marks the selected point (red star outline) and UW-SO's weights (orange diamond).
    simplex = png(out / "simplex.png").astype(int)
    for colour in ((0xD6, 0x27, 0x28), (0xFF, 0x7F, 0x0E)):
        assert (np.abs(simplex - colour).sum(axis=2) < 30).sum() > 20


def test_results_csv_keeps_full_precision(bench, tmp_path: Path) -> None:
    store, _ = bench
    write_report(store, tmp_path / "out")
    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["uwso", "scalarization", "ew", "rlw"]
    assert float(rows[0]["delta_m_mean"]) == -3.0 and float(rows[0]["delta_m_std"]) == 1.0
    assert rows[3]["delta_m_per_seed"] == "3.0;6.0"
    assert float(rows[2]["cpu_seconds"]) == 41.5 and float(rows[0]["dense/l1 mean"]) == 0.1234
    assert rows[1]["selected_options"] == '{"weights": [0.2, 0.2, 0.6]}' and rows[1]["runs"] == "37"
    assert rows[3]["delta_m_seeds"] == "0;1" and float(rows[3]["gpu_seconds"]) == 0.0
    assert {r["metrics_not_in_delta_m"] for r in rows} == {""}


def test_no_simplex_without_scalarization_and_a_missing_summary_is_named(bench, tmp_path: Path) -> None:
    store, summary = bench
    summary.methods = [m for m in summary.methods if m.method != "scalarization"]
    store.save_summary("small", summary.to_dict())
    write_report(store, tmp_path / "out", summary_name="small")
    assert not (tmp_path / "out" / "simplex.png").exists()
    assert "simplex" not in (tmp_path / "out" / "report.md").read_text()
    # 3 panels: 3 columns × 1 row → 12.6 × 3.6 in.
    assert png(tmp_path / "out" / "weights.png").shape == (round(3.6 * DPI), round(12.6 * DPI), 3)
    with pytest.raises(ValueError, match=r"no benchmark summary named 'other' \(it holds \['bench', 'small'\]\)"):
        write_report(store, tmp_path / "out", summary_name="other")


def test_mean_weights_and_ternary_coordinates_by_hand() -> None:
    run = make_run("uwso", 0, {"temperature": 5.0})
    run.step_weights = [[0.2, 0.3, 0.5], [0.4, 0.3, 0.3]]
    run.steps = [1, 2]
    assert mean_weights([run]) == pytest.approx([0.3, 0.3, 0.4])
    run.step_weights, run.steps = [], []
    for record, weights in zip(run.epochs, ([0.1, 0.2, 0.7], [0.3, 0.4, 0.3]), strict=True):
        record.mean_weights = dict(zip(run.tasks, weights, strict=True))
    assert mean_weights([run]) == pytest.approx([0.2, 0.3, 0.5])
    assert to_ternary([1, 0, 0]) == (0.0, 0.0) and to_ternary([0, 2, 0]) == (1.0, 0.0)
    assert to_ternary([0, 0, 1]) == pytest.approx((0.5, math.sqrt(3) / 2))
    assert to_ternary([1, 1, 1]) == pytest.approx((0.5, math.sqrt(3) / 6))  # the centroid


def test_a_failed_method_and_a_left_out_metric_are_shown_and_every_file_is_written(bench, tmp_path: Path) -> None:
    store, summary = bench
    rlw = summary.methods[3]
    rlw.delta_m_mean = rlw.delta_m_std = math.nan
    rlw.delta_m_per_seed, rlw.seed_run_ids, rlw.metrics_mean = [], [], {}
    rlw.failed_run_ids = ["f0", "f1"]
    summary.excluded_metrics = {"dense/l1": "the STL test baseline: its baseline is 0.0: a relative change to it is "
                                            "undefined"}
    summary.baseline_test["dense/l1"] = 0.0
    store.save_summary("bench", summary.to_dict())
    out = tmp_path / "report"
    text = write_report(store, out).read_text()
    assert sorted(p.name for p in out.iterdir()) == ["compute.png", "delta_m.png", "report.md", "results.csv",
                                                     "simplex.png", "weights.png"]
    assert "| 4 | RLW | failed (2 runs) | nan | nan | nan | 2 | 39 |" in text
    assert "Δm leaves out dense/l1 (dense/l1: the STL test baseline: its baseline is 0.0" in text
    assert "| dense/l1 ↓ (left out of Δm) | 0.1300 | 0.000 |" in text
    console = Console(width=200, record=True)
    console.print(render_table(summary))
    terminal = console.export_text()
    assert "failed (2 runs)" in terminal and "Δm leaves out dense/l1" in terminal


def test_a_weights_panel_names_its_seed_only_when_the_first_seed_did_not_run(bench) -> None:
    _, summary = bench
    uwso = next(m for m in summary.methods if m.method == "uwso")
    first, second = make_run("uwso", 0, dict(uwso.selected.options)), make_run("uwso", 1, dict(uwso.selected.options))
    plain = weights_panel_title(uwso, first, first_seed=0)
    assert "seed" not in plain
    assert weights_panel_title(uwso, second, first_seed=0) == f"{plain}, seed 1"
    assert weights_panel_title(uwso, None, first_seed=0) == plain


def test_a_mean_over_fewer_seeds_than_the_benchmark_says_how_many() -> None:
    from dataclasses import replace

    from taskbalance.protocol.summary import GridPoint, MethodSummary
    from taskbalance.report.tables import format_delta_m

    point = GridPoint(options={}, lr=1e-3, val_delta_m=1.0, run_ids=["r"])
    method = MethodSummary(method="ew", label="EW", selected=point, delta_m_mean=2.0, delta_m_std=0.0,
                           delta_m_per_seed=[2.0], metrics_mean={}, metrics_std={}, rank=1, runs=3, cpu_seconds=1.0,
                           grid=[point])
    assert format_delta_m(method, seeds=3) == "+2.00 ± 0.00 (1 of 3 seeds)"
    assert format_delta_m(replace(method, delta_m_per_seed=[1.0, 2.0, 3.0]), seeds=3) == "+2.00 ± 0.00"


def test_the_report_defines_the_delta_m_variant_it_shows(bench, tmp_path: Path) -> None:
    from dataclasses import replace

    from taskbalance.report.writer import _report_text

    store, summary = bench
    text = _report_text(replace(summary, delta_m_variant="per_task"), store, {})
    assert "Δm (per-task variant) = (1/T)·Σₜ" in text and "over the N metrics" not in text


def test_each_seed_is_named_beside_its_delta_m_and_an_older_summary_lists_values_only(bench, tmp_path: Path) -> None:
    store, summary = bench
    rlw = summary.methods[3]
    rlw.delta_m_per_seed, rlw.delta_m_seeds = [6.0], [1]  # seed 0's run is missing
    text = write_report(store_with(store, summary), tmp_path / "out").read_text()
    assert "| seed 1 +6.00 |" in text and "seed 0 -4.00, seed 1 -2.00 |" in text
    rlw.delta_m_seeds = []  # written before the seeds were recorded
    text = write_report(store_with(store, summary), tmp_path / "old").read_text()
    assert "| +6.00 |" in text


def store_with(store: RunStore, summary) -> RunStore:
    store.save_summary("bench", summary.to_dict())
    return store


def test_gpu_seconds_get_a_column_only_when_some_run_trained_on_a_gpu(bench, tmp_path: Path) -> None:
    store, summary = bench
    assert "GPU-s" not in markdown_table(summary)
    for method in summary.methods:
        method.gpu_seconds = 10.0 * method.rank
    summary.excluded_metrics = {"dense/l1": "its STL baseline is 0"}
    table = markdown_table(summary)
    assert table.splitlines()[0].endswith("| runs | CPU-s | GPU-s |")
    assert "| 3 | EW | +2.00 ± 0.00 | 0.7700 | 0.7600 | 0.1400 | 2 | 42 | 30 |" in table
    text = write_report(store_with(store, summary), tmp_path / "out").read_text()
    assert "GPU-s the wall time of the runs that trained on a GPU" in text
    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["gpu_seconds"]) for r in rows] == [10.0, 20.0, 30.0, 40.0]
    assert {r["metrics_not_in_delta_m"] for r in rows} == {"dense/l1"}
