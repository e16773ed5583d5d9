"""RunStore: exact round trips, status transitions, one-transaction saves, idempotence, several writer processes."""

from __future__ import annotations

import math
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from taskbalance.protocol.summary import BenchSummary, GridPoint, MethodSummary
from taskbalance.store import RunStore, StoreError
from taskbalance.store.run_store import _Cursor
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult


def make_result(method: str = "uwso", seed: int = 0, epochs: int = 2, dataset: str = "multifashion") -> RunResult:
    """A 3-task run with distinct, hand-picked values (key order deliberately not alphabetical)."""
    config = RunConfig(dataset=dataset, tasks=["right", "left", "dense"], method=method, seed=seed, epochs=epochs,
                       method_options={"temperature": 2.0} if method == "uwso" else {})
    records = [
        EpochRecord(
            epoch=e,
            train_losses={"right": 2.0 / e, "left": 1.5 / e, "dense": 0.25 / e},
            val={"right/acc": 0.5 + 0.1 * e, "left/acc": 0.4 + 0.1 * e, "dense/l1": 0.3 / e},
            test={"right/acc": 0.45 + 0.1 * e, "left/acc": 0.35 + 0.1 * e, "dense/l1": 0.31 / e},
            mean_weights={"right": 0.2, "left": 0.3, "dense": 0.5},
            lr=1e-3 / e,
            seconds=1.25 * e,
        )
        for e in range(1, epochs + 1)
    ]
    steps = [1, 2, 4, 8]
    return RunResult(
        config=config,
        tasks=["right", "left", "dense"],
        higher_is_better={"right/acc": True, "left/acc": True, "dense/l1": False},
        epochs=records,
        steps=steps,
        step_weights=[[0.1 * s, 0.2 * s, 1 - 0.3 * s] for s in (1, 1.5, 2, 2.5)],
        step_losses=[[2.0 / s, 1.0 / s, 0.5 / s] for s in steps],
        ms_per_step=12.5,
        peak_memory_mb=321.0,
        wall_seconds=7.5,
        cpu_seconds=6.25,
    )


def row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("runs", "epochs", "epoch_values", "step_values", "summaries")}


def test_save_and_get_round_trip_exactly(tmp_path: Path) -> None:
    result = make_result()
    with RunStore(tmp_path / "r.sqlite") as store:
        assert store.get(result.run_id) is None and store.status(result.run_id) is None
        store.save(result)
        loaded = store.get(result.run_id)
    assert loaded == result
    assert list(loaded.epochs[0].val) == ["right/acc", "left/acc", "dense/l1"]  # order kept, not sorted
    assert loaded.to_dict() == result.to_dict()


def test_saving_twice_leaves_no_duplicate_rows(tmp_path: Path) -> None:
    result = make_result(epochs=3)
    with RunStore(tmp_path / "r.sqlite") as store:
        store.mark_running(result.config)
        store.save(result)
        store.save(result)
        assert store.results() == [result]
    # 3 epochs × (3 losses + 3 val + 3 test + 3 weights) = 36 values; 4 logged steps × 3 tasks = 12 step rows.
    assert row_counts(tmp_path / "r.sqlite") == {
        "runs": 1, "epochs": 3, "epoch_values": 36, "step_values": 12, "summaries": 0
    }


def test_status_transitions_and_finished_runs_are_never_downgraded(tmp_path: Path) -> None:
    result = make_result()
    config, run_id = result.config, result.run_id
    with RunStore(tmp_path / "r.sqlite") as store:
        store.mark_running(config)
        assert store.status(run_id) == "running" and store.get(run_id) is None
        store.mark_failed(config, "ValueError: loss of task 'left' is nan")
        assert store.status(run_id) == "failed"
        assert store.error(run_id) == "ValueError: loss of task 'left' is nan"
        assert store.get(run_id) is None and store.results() == []
        store.mark_running(config)
        assert store.status(run_id) == "running" and store.error(run_id) is None
        store.save(result)
        store.mark_failed(config, "late failure report")
        store.mark_running(config)
        assert store.status(run_id) == "finished" and store.error(run_id) is None
        assert store.get(run_id) == result
        assert store.statuses() == {run_id: "finished"}


def test_a_save_that_fails_midway_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = make_result(epochs=2), make_result(epochs=3)
    assert first.run_id != second.run_id
    with RunStore(tmp_path / "r.sqlite") as store:
        store.save(first)
        store.mark_running(second.config)
        original = _Cursor.executemany

        def fail_on_steps(self: _Cursor, sql: str, rows: list) -> None:
            if "step_values" in sql:
                raise sqlite3.OperationalError("disk I/O error (simulated)")
            original(self, sql, rows)

        monkeypatch.setattr(_Cursor, "executemany", fail_on_steps)
        with pytest.raises(sqlite3.OperationalError, match="simulated"):
            store.save(second)
        monkeypatch.undo()
        assert store.status(second.run_id) == "running" and store.get(second.run_id) is None
        assert store.get(first.run_id) == first
    # Only the first run's rows: 2 epochs, 2 × 12 values, 12 step rows.
    assert row_counts(tmp_path / "r.sqlite") == {
        "runs": 2, "epochs": 2, "epoch_values": 24, "step_values": 12, "summaries": 0
    }


def test_nan_metrics_and_missing_step_losses_round_trip(tmp_path: Path) -> None:
    result = make_result()
    result.epochs[1].val["dense/l1"] = math.nan
    result.step_losses = []
    with RunStore(tmp_path / "r.sqlite") as store:
        store.save(result)
        loaded = store.get(result.run_id)
    assert math.isnan(loaded.epochs[1].val["dense/l1"])
    assert loaded.step_losses == [] and loaded.step_weights == result.step_weights


def test_results_filter_by_method_and_dataset(tmp_path: Path) -> None:
    runs = [make_result("ew", 0), make_result("uwso", 0), make_result("uwso", 1), make_result("ew", 0, dataset="x")]
    with RunStore(tmp_path / "r.sqlite") as store:
        for run in runs:
            store.save(run)
        store.mark_failed(make_result("ew", 5).config, "boom")
        assert {r.run_id for r in store.results()} == {r.run_id for r in runs}
        assert [r.config.seed for r in store.results(method="uwso")] == [0, 1]
        assert [r.run_id for r in store.results(method="ew", dataset="x")] == [runs[3].run_id]
        assert store.results(dataset="nothing") == []


def test_inconsistent_step_logs_are_rejected_with_the_field_name(tmp_path: Path) -> None:
    result = make_result()
    result.step_weights = result.step_weights[:3]
    with RunStore(tmp_path / "r.sqlite") as store, pytest.raises(StoreError, match="step_weights has 3 rows"):
        store.save(result)
    result = make_result()
    result.step_losses[2] = [1.0, 2.0]
    with RunStore(tmp_path / "r.sqlite") as store, pytest.raises(StoreError, match=r"step_losses\[2\] has 2 values"):
        store.save(result)


def summary() -> BenchSummary:
    point = GridPoint({"temperature": 5.0}, 1e-3, -1.5, ["abc"])
    method = MethodSummary("uwso", "UW-SO", point, -2.0, 0.5, [-2.5, -1.5], {"a/acc": 0.8}, {"a/acc": 0.01},
                           1, 3, 42.0, [point], ["abc", "def"])
    return BenchSummary("multifashion", "multilenet", ["a", "b"], ["a/acc"], {"a/acc": True}, "all_metrics",
                        {"a/acc": 0.7}, {"a/acc": 0.71}, [method], [0, 1], ["note"], 12.0)


def test_summaries_round_trip_and_replace(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r.sqlite") as store:
        assert store.load_summary("bench") is None
        first = summary()
        store.save_summary("bench", first.to_dict())
        second = summary()
        second.wall_seconds = 99.0
        store.save_summary("bench", second.to_dict())
        assert BenchSummary.from_dict(store.load_summary("bench")) == second
        assert store.summary_names() == ["bench"]
    assert row_counts(tmp_path / "r.sqlite")["summaries"] == 1


def test_store_is_durable_and_in_wal_mode(tmp_path: Path) -> None:
    result = make_result()
    with RunStore(tmp_path / "r.sqlite") as store:
        store.save(result)
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with RunStore(tmp_path / "r.sqlite") as store:
        assert store.get(result.run_id) == result


def test_wrong_schema_version_and_closed_store_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    store = RunStore(path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.status("x")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        RunStore(path)


def _writer(path: str, seeds: list[int]) -> None:
    with RunStore(path) as store:
        for seed in seeds:
            result = make_result("ew", seed)
            store.mark_running(result.config)
            store.save(result)


def test_two_processes_writing_at_once(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    RunStore(path).close()
    # fork: the writers need only sqlite, and a spawned process would spend seconds importing torch.
    context = multiprocessing.get_context("fork")
    # Seeds 10..14 are written by both processes: each must end up stored once.
    workers = [context.Process(target=_writer, args=(str(path), list(range(s, s + 15)))) for s in (0, 10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    with RunStore(path) as store:
        assert sorted(r.config.seed for r in store.results()) == list(range(25))
        assert store.get(make_result("ew", 12).run_id) == make_result("ew", 12)
    # 25 runs × (2 epochs, 24 values, 12 step rows).
    assert row_counts(path) == {"runs": 25, "epochs": 50, "epoch_values": 600, "step_values": 300, "summaries": 0}


def test_a_copy_of_the_file_alone_holds_every_saved_run(tmp_path: Path) -> None:
    """As after a kill: the store is still open (its WAL not yet merged at close) when the file is copied."""
    path = tmp_path / "r.sqlite"
    result = make_result()
    store = RunStore(path)
    store.save(result)
    failed = make_result("ew", seed=7)
    store.mark_running(failed.config)
    store.mark_failed(failed.config, "ValueError: boom")
    copy = tmp_path / "copy" / "r.sqlite"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())  # without r.sqlite-wal
    with RunStore(copy) as copied:
        assert copied.get(result.run_id) == result
        assert copied.status(failed.run_id) == "failed"
    store.close()


@pytest.mark.parametrize("damage", ["junk", "truncated"])
def test_a_corrupt_or_truncated_file_is_named_with_what_to_do(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "r.sqlite"
    with RunStore(path) as store:
        for seed in range(20):
            store.save(make_result(seed=seed, epochs=5))
    data = path.read_bytes()
    path.write_bytes(b"not a database " * 64 if damage == "junk" else data[: len(data) // 2])
    with pytest.raises(StoreError, match="is not a readable taskbalance results store") as raised:
        RunStore(path)
    assert str(path) in str(raised.value) and "Move it away" in str(raised.value)


def test_merge_copies_finished_runs_the_target_lacks_and_keeps_its_own(tmp_path: Path) -> None:
    from dataclasses import replace

    only_there, both, failed_here, running_there = (make_result(seed=s) for s in range(4))
    with RunStore(tmp_path / "gpu.sqlite") as gpu, RunStore(tmp_path / "cpu.sqlite") as cpu:
        for result in (only_there, failed_here):
            gpu.save(replace(result, environment={"device": "cuda", "device_name": "H200"}))
        gpu.save(replace(both, wall_seconds=99.0))
        gpu.mark_running(running_there.config)
        cpu.save(both)
        cpu.mark_failed(failed_here.config, "Traceback: diverged")
        times = gpu.connection.execute("SELECT started, finished FROM runs WHERE run_id = ?",
                                       (only_there.run_id,)).fetchone()

        copied = cpu.merge_from(gpu)

        assert sorted(copied) == sorted([only_there.run_id, failed_here.run_id])
        assert cpu.get(only_there.run_id) == replace(only_there, environment={"device": "cuda", "device_name": "H200"})
        assert cpu.status(failed_here.run_id) == "finished" and cpu.error(failed_here.run_id) is None
        assert cpu.get(both.run_id) == both  # finished in both: the target's result stays
        assert cpu.status(running_there.run_id) is None  # not finished in the source: not copied
        assert cpu.connection.execute("SELECT started, finished FROM runs WHERE run_id = ?",
                                      (only_there.run_id,)).fetchone() == times
        assert cpu.merge_from(gpu) == []  # idempotent
    counts = row_counts(tmp_path / "cpu.sqlite")
    assert counts["runs"] == 3 and counts["epochs"] == 3 * 2


def test_merge_refuses_itself_and_a_run_whose_config_gives_another_id(tmp_path: Path) -> None:
    import json

    result = make_result()
    with RunStore(tmp_path / "a.sqlite") as source, RunStore(tmp_path / "b.sqlite") as target:
        with RunStore(tmp_path / "a.sqlite") as same, pytest.raises(StoreError, match="into itself"):
            source.merge_from(same)
        source.save(result)
        # A stored config whose identity no longer matches its run id, as a store of another run identity would be.
        changed = json.dumps({**result.config.to_dict(), "seed": 7})
        source.connection.execute("UPDATE runs SET config = ? WHERE run_id = ?", (changed, result.run_id))
        with pytest.raises(StoreError, match=f"{result.run_id}.*run identity differs"):
            target.merge_from(source)
        assert target.statuses() == {}


def test_a_store_path_that_cannot_be_opened_is_a_store_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "folder.sqlite").mkdir()
    with pytest.raises(StoreError, match=r"folder\.sqlite is a folder"):
        RunStore(tmp_path / "folder.sqlite")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot open the results store .*file/under/r\.sqlite.*Not a directory"):
        RunStore(tmp_path / "file" / "under" / "r.sqlite")
    path = tmp_path / "r.sqlite"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version two"):
        RunStore(path)


def test_a_run_stored_by_another_version_with_an_unknown_config_field_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    result = make_result()
    with RunStore(path) as store:
        store.save(result)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET config = json_set(config, '$.grad_clip', 1.0)")
    with RunStore(path) as store, pytest.raises(StoreError, match=f"stored config of run {result.run_id}.*grad_clip"):
        store.get(result.run_id)


def test_merge_keeps_a_run_the_target_finished_while_the_merge_went_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = make_result("ew"), make_result("ew")
    theirs.wall_seconds = 99.0  # the same experiment, another copy of it
    with RunStore(tmp_path / "target.sqlite") as target, RunStore(tmp_path / "source.sqlite") as source:
        source.save(theirs)
        target.save(ours)
        # The merge listed the target's runs before the target's own sweep stored this one.
        monkeypatch.setattr(target, "statuses", lambda: {})
        assert target.merge_from(source) == []
        kept = target.get(ours.run_id)
    assert kept is not None and kept.wall_seconds == ours.wall_seconds


def test_method_diagnostics_round_trip_and_an_older_store_gets_the_column(tmp_path: Path) -> None:
    from dataclasses import replace

    counted = replace(make_result(method="nashmtl"), method_diagnostics={"solve_failures": 3.0})
    path = tmp_path / "old.sqlite"
    with RunStore(path) as store:
        store.save(make_result())
    with sqlite3.connect(path) as db:  # a store written before the column existed
        db.execute("ALTER TABLE runs DROP COLUMN method_diagnostics")
    with RunStore(path) as store:
        assert store.get(make_result().run_id) == make_result()  # read back with no counts
        store.save(counted)
        assert store.get(counted.run_id) == counted


def test_a_stored_config_leaves_out_later_fields_at_their_defaults_and_reads_back_equal(tmp_path: Path) -> None:
    import json
    from dataclasses import replace

    plain = make_result()
    sgd = replace(plain, config=plain.config.replace(optimizer="sgd", momentum=0.9, seed=7))
    with RunStore(tmp_path / "r.sqlite") as store:
        store.save(plain)
        store.save(sgd)
        assert store.get(plain.run_id) == plain and store.get(sgd.run_id) == sgd
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        stored = {rid: json.loads(c) for rid, c in db.execute("SELECT run_id, config FROM runs")}
    # An older taskbalance, which refuses unknown fields, still reads the run that uses none of the new ones.
    assert not {"optimizer", "momentum", "method_lr", "precision", "loader_workers"} & set(stored[plain.run_id])
    assert (stored[sgd.run_id]["optimizer"], stored[sgd.run_id]["momentum"]) == ("sgd", 0.9)
