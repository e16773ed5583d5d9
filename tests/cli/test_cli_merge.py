"""`taskbalance merge`: one sweep's stores from several machines combined into one."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from taskbalance.cli import main
from taskbalance.store import RunStore
from taskbalance.training import EpochRecord, RunConfig, RunResult


def result(seed: int) -> RunResult:
    record = EpochRecord(1, {"a": 0.5}, {"a/acc": 0.8}, {"a/acc": 0.7 + seed / 100}, {"a": 1.0}, 1e-3, 2.0)
    return RunResult(RunConfig(tasks=["a"], epochs=1, seed=seed), ["a"], {"a/acc": True}, [record])


def test_merge_copies_the_runs_a_store_lacks_from_files_and_folders(tmp_path: Path) -> None:
    with RunStore(tmp_path / "gpu" / "results.sqlite") as gpu, RunStore(tmp_path / "other.sqlite") as other:
        gpu.save(result(0))
        gpu.save(result(1))
        other.save(result(2))
    with RunStore(tmp_path / "here" / "results.sqlite") as here:
        here.save(result(1))

    outcome = CliRunner().invoke(main, ["merge", str(tmp_path / "here"), str(tmp_path / "gpu"),
                                        str(tmp_path / "other.sqlite")])

    assert outcome.exit_code == 0, outcome.output
    assert "1 finished run(s) copied" in outcome.output and "3 finished runs" in outcome.output
    with RunStore(tmp_path / "here" / "results.sqlite") as here:
        assert {here.status(result(s).run_id) for s in range(3)} == {"finished"}
        assert here.get(result(0).run_id) == result(0)


def test_merge_names_a_missing_source_and_a_store_merged_into_itself(tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["merge", str(tmp_path / "here"), str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "SOURCE" in missing.output and "nowhere" in missing.output
    assert "Traceback" not in missing.output
    with RunStore(tmp_path / "here" / "results.sqlite") as here:
        here.save(result(0))
    itself = CliRunner().invoke(main, ["merge", str(tmp_path / "here"), str(tmp_path / "here")])
    assert itself.exit_code == 2 and "OUTPUT_DIR's own store" in itself.output
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"not a database at all" * 100)
    bad = CliRunner().invoke(main, ["merge", str(tmp_path / "here"), str(damaged)])
    assert bad.exit_code == 2 and "damaged.sqlite" in bad.output and "Traceback" not in bad.output
