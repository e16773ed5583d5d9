"""scripts/convergence.py end to end on a tiny slice: every curve's epochs land in the CSV, the summary and the plot."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "convergence.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convergence_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_convergence_writes_every_epoch_of_every_curve_and_resumes(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    script = load()
    args = ["--epochs", "1", "--lrs", "1e-3", "--processes", "1", "--num-train", "64", "--num-eval", "32",
            "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    try:
        script.main(args)
        first = (tmp_path / "out" / "convergence.csv").read_text()
        script.main(args)  # every curve is complete: nothing is trained again, the outputs are the same
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "out" / "convergence.csv").read_text() == first
    rows = list(csv.DictReader(first.splitlines()))
    # EW: 4 metrics; STL left/right: 1 metric each; STL depth: 2 metrics.
    assert len(rows) == 4 + 1 + 1 + 2
    assert {r["run"] for r in rows} == {"ew", "stl-left", "stl-right", "stl-depth"}
    summary = list(csv.DictReader((tmp_path / "out" / "convergence_summary.csv").open()))
    assert [r["metric"] for r in summary if r["run"] == "ew"][-1] == "delta_m"
    assert (tmp_path / "out" / "convergence.png").stat().st_size > 10_000


def test_first_within_finds_the_plateau_of_a_noisy_curve() -> None:
    first_within = load().first_within
    assert first_within([0.5, 0.7, 0.79, 0.8, 0.795], True, 0.02) == (4, 3)
    assert first_within([0.3, 0.2, 0.15, 0.151, 0.149], False, 0.01) == (5, 3)
    assert first_within([9.0, 3.0, 1.5, 1.0, 2.0], False, 0.0, absolute=1.0) == (4, 3)
