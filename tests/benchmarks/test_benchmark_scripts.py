"""The benchmark scripts run end to end on tiny settings (their numbers are not checked here: tests are not timed)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keep_thread_count() -> object:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def table_rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_gradient_methods_prints_a_row_per_k_and_method_with_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    load("gradient_methods").main(
        ["--tasks", "2,3", "--steps", "1", "--warmup", "0", "--batch", "8", "--methods", "pcgrad,mgda", "--batched"]
    )
    header, *rows = table_rows(capsys.readouterr().out)
    assert header[-3:] == ["batched (ms)", "batched/ref", "peak MiB EW / ref / param / rep / batched"]
    assert [(row[0], row[1]) for row in rows] == [("2", "pcgrad"), ("2", "mgda"), ("3", "pcgrad"), ("3", "mgda")]
    for row in rows:
        assert len(row) == len(header)
        assert all(float(cell) > 0 for cell in row[2:-1])
        assert len(row[-1].split(" / ")) == 5


def test_step_overhead_prints_a_ratio_for_every_method(capsys: pytest.CaptureFixture[str]) -> None:
    load("step_overhead").main(
        ["--steps", "1", "--repeats", "1", "--warmup", "0", "--batch-size", "8", "--methods", "ew", "uwso", "famo"]
    )
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 1 :] if line.strip()}
    assert set(rows) == {"ew", "uwso", "famo"}
    assert float(rows["ew"][1]) == 1.0  # the ratio column is relative to EW
    assert all(float(value) > 0 for values in rows.values() for value in values)


def test_ddp_scaling_prints_times_and_volumes_per_method() -> None:
    # A subprocess: its spawned ranks import the worker function from the script by name.
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ddp_scaling.py"), "--steps", "1", "--warmup", "0", "--batch", "16",
         "--methods", "ew,mgda"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "GLOO_SOCKET_IFNAME": "lo"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    header, *rows = table_rows(done.stdout)
    assert header[:2] == ["method", "mode"]
    assert [(row[0], row[1]) for row in rows] == [("ew", "—"), ("mgda", "parameters"), ("mgda", "representation")]
    volumes = {row[1]: int(row[5].replace(",", "")) for row in rows}
    gram, per_task = (int(rows[1][i].replace(",", "")) for i in (6, 7))
    # The measured volumes are the schemes' (float32 Gram: 4·K² bytes more than one gradient, plus the heads).
    assert volumes["representation"] == gram
    assert volumes["parameters"] == per_task
    assert all(float(row[4]) > 0 for row in rows)


def test_gpu_check_dry_run_measures_every_variant_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.md"
    report = load("gpu_check").main(["--dry-run", "--out", str(out)])
    assert out.read_text() == report
    assert "dry run: not a measurement" in report
    rows = table_rows(report)
    steps = [row for row in rows if len(row) == 5 and row[0] in ("multilenet", "segnet")]
    variants = {"ew", "uwso", "plain ew", "plain uwso"} | {
        f"nashmtl {mode} {strategy}" for mode in ("parameters", "representation") for strategy in ("loop", "batched")
    }
    for model in ("multilenet", "segnet"):
        for precision in ("fp32", "bf16"):
            seen = {row[2] for row in steps if row[0] == model and row[1] == precision}
            assert seen == variants, (model, precision)
    assert all(float(row[3]) > 0 and float(row[4]) > 0 for row in steps)
    # A parameters-mode Nash-MTL step backpropagates through the encoder once per task: more FLOPs than EW's in the
    # same time would be a higher rate, so compare the counts the rates come from.
    gpu_check = load("gpu_check")
    problem = gpu_check.problems(torch.device("cpu"), dry_run=True)[1]
    ew, nash = (gpu_check.step_flops(problem, name, {"mode": "parameters"} if name == "nashmtl" else {})
                for name in ("ew", "nashmtl"))
    assert nash > ew == gpu_check.step_flops(problem, None, {})
    traced_once = gpu_check.problem_forward_flops(problem)
    assert gpu_check.step_flops(problem, "nashmtl", {"mode": "parameters"}, forward=traced_once) == nash
    assert any("default bench on the GPU | not run" in line for line in report.splitlines())


def test_model_cost_prints_a_row_per_preset_with_its_flops(capsys: pytest.CaptureFixture[str]) -> None:
    load("model_cost").main(["--presets", "celeba-resnet18", "--batch", "1", "--steps", "1", "--warmup", "0"])
    header, *rows = table_rows(capsys.readouterr().out)
    assert header[0] == "preset" and header[-1] == "CPU-h per EW run"
    assert [row[:5] for row in rows] == [["celeba-resnet18", "resnet18", "3×64×64", "40", "1"]]
    forward_ms, step_ms, ratio, gflop = (float(cell.replace(",", "")) for cell in rows[0][5:9])
    assert forward_ms > 0 and step_ms > 0
    assert ratio == pytest.approx(step_ms / forward_ms, rel=0.05)
    assert gflop == pytest.approx(0.296, abs=0.001)  # the documented ImageNet-stem count at 64×64


def test_model_cost_names_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load("model_cost").main(["--presets", "nyuv2-segnet,mnist"])
    assert "--presets: unknown preset(s) mnist" in capsys.readouterr().err
