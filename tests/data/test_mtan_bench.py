"""`taskbalance bench --model mtan` end to end on a tiny generated NYUv2 fixture (one step per run)."""

from pathlib import Path

from click.testing import CliRunner
from dataset_fixtures import write_nyuv2

from taskbalance.cli import main
from taskbalance.store import RunStore


def test_bench_trains_mtan_with_a_gradient_method_in_representation_mode(tmp_path: Path) -> None:
    write_nyuv2(tmp_path / "nyuv2", train=6, test=3, size=(32, 32))
    args = [
        "bench", "--dataset", "nyuv2", "--data-root", str(tmp_path / "nyuv2"), "--model", "mtan",
        "--dataset-option", 'tasks=["segmentation","depth"]', "--methods", "dualproj",
        "--method-option", "dualproj.mode=representation", "--epochs", "1", "--max-steps", "1", "--workers", "1",
        "--seeds", "0", "--out", str(tmp_path / "bench"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "nyuv2 / mtan" in result.output and "DualProj" in result.output
    with RunStore(tmp_path / "bench" / "results.sqlite") as store:
        runs = store.results()
    assert len(runs) == 3  # two single-task baselines and the DualProj run
    mtl = [run for run in runs if len(run.tasks) == 2]
    assert len(mtl) == 1 and len(mtl[0].step_weights[0]) == 2
    assert set(mtl[0].epochs[0].test) >= {"segmentation/miou", "depth/abs_err"}
