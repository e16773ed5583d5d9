"""run_configs: skipping finished runs, the spawn pool, failures, progress, and a killed sweep that resumes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
import torch
from fake_runs import crashing_run, fake_result, invocations, sleepy_run, threads_seen
from rich.console import Console
from sweep_driver import sweep_configs

from taskbalance.execution import BarProgress, LineProgress, RunsFailedError, run_configs
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord, RunResult

HERE = Path(__file__).parent


def configs(tmp_path: Path, seeds: range, **options: object) -> list[RunConfig]:
    (tmp_path / "markers").mkdir(exist_ok=True)
    dataset_options = {"marker_dir": str(tmp_path / "markers"), **options}
    return [RunConfig(tasks=["a", "b"], seed=s, epochs=2, dataset_options=dataset_options) for s in seeds]


def test_in_process_runs_are_stored_and_never_trained_twice(tmp_path: Path) -> None:
    runs = configs(tmp_path, range(3))
    lines: list[str] = []
    with RunStore(tmp_path / "r.sqlite") as store:
        results = run_configs(runs[:2], store=store, workers=1, progress=lines.append, run_fn=sleepy_run)
        assert list(results) == [c.run_id() for c in runs[:2]]
        assert all(results[c.run_id()] == fake_result(c) for c in runs[:2])
        # Second sweep: the two finished runs are skipped, only the third trains.
        lines.clear()
        results = run_configs(runs + runs[:1], store=store, workers=1, progress=lines.append, run_fn=sleepy_run)
        assert list(results) == [c.run_id() for c in runs]
        assert all(store.get(c.run_id()) == fake_result(c) for c in runs)
    assert [len(invocations(tmp_path / "markers", c.run_id())) for c in runs] == [1, 1, 1]
    assert lines[0] == "running 1 runs in-process (2 already finished, skipped)"
    assert lines[1].startswith(f"[1/1] finished ew lr=0.001 seed=2 tasks=a,b [{runs[2].run_id()}] in ")
    assert lines[-1].startswith("1/1 runs ended in ")


def test_nothing_to_run_prints_nothing_and_calls_nothing(tmp_path: Path) -> None:
    runs = configs(tmp_path, range(2))
    lines: list[str] = []
    with RunStore(tmp_path / "r.sqlite") as store:
        for config in runs:
            store.save(fake_result(config))
        results = run_configs(runs, store=store, workers=2, progress=lines.append, run_fn=sleepy_run)
    assert results == {c.run_id(): fake_result(c) for c in runs}
    assert lines == [] and not any((tmp_path / "markers").iterdir())


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, total: int, skipped: int, where: str) -> None:
        self.events.append(("start", total, skipped))

    def epoch(self, config: RunConfig, record: EpochRecord) -> None:
        self.events.append(("epoch", config.seed, record.epoch))

    def run_finished(self, config: RunConfig, seconds: float, error: str | None) -> None:
        self.events.append(("run", config.seed, error is None))

    def close(self) -> None:
        self.events.append(("close",))


def test_in_process_runs_report_every_epoch(tmp_path: Path) -> None:
    progress = RecordingProgress()
    with RunStore(tmp_path / "r.sqlite") as store:
        run_configs(configs(tmp_path, range(2)), store=store, workers=1, progress=progress, run_fn=sleepy_run)
    assert progress.events == [("start", 2, 0), ("epoch", 0, 1), ("epoch", 0, 2), ("run", 0, True),
                               ("epoch", 1, 1), ("epoch", 1, 2), ("run", 1, True), ("close",)]


def test_pool_runs_in_spawned_single_threaded_workers_and_collects_failures(tmp_path: Path) -> None:
    good = configs(tmp_path, range(2))
    flag = tmp_path / "fail"
    flag.touch()
    bad = configs(tmp_path, range(1), fail_flag=str(flag))[0]
    lines: list[str] = []
    with RunStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(RunsFailedError) as caught:
            run_configs([bad, *good], store=store, workers=2, progress=lines.append, run_fn=sleepy_run,
                        checkpoint_dir=tmp_path / "ckpt")
        # The failure is reported after the others finished, and every finished run is stored.
        assert list(caught.value.failures) == [bad.run_id()]
        assert bad.run_id() in str(caught.value) and "ValueError: loss of task 'b' is nan in epoch 2" in str(
            caught.value)
        assert store.status(bad.run_id()) == "failed"
        assert "Traceback" in store.error(bad.run_id()) and "sleepy_run" in store.error(bad.run_id())
        assert all(store.get(c.run_id()) == fake_result(c) for c in good)
    for config in [bad, *good]:
        ((first_epoch, pid, threads),) = invocations(tmp_path / "markers", config.run_id())
        assert first_epoch == 1 and pid != os.getpid() and threads == 1
    assert sum("FAILED" in line for line in lines) == 1
    # The failed run's checkpoint of epoch 1 is kept; finished runs removed theirs.
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [f"{bad.run_id()}.pt"]

    # Once the cause is gone, the failed run is retried, resumes at epoch 2, and nothing else is trained again.
    flag.unlink()
    with RunStore(tmp_path / "r.sqlite") as store:
        results = run_configs([bad, *good], store=store, workers=1, progress=lines.append, run_fn=sleepy_run,
                              checkpoint_dir=tmp_path / "ckpt")
        assert store.status(bad.run_id()) == "finished" and store.error(bad.run_id()) is None
    assert results[bad.run_id()] == fake_result(bad)
    assert [call[0] for call in invocations(tmp_path / "markers", bad.run_id())] == [1, 2]
    assert all(len(invocations(tmp_path / "markers", c.run_id())) == 1 for c in good)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_run_trains_with_one_torch_thread_whatever_the_driver_has(tmp_path: Path, workers: int) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(3)  # a driver with torch's default on a machine with 3 cores
    try:
        with RunStore(tmp_path / "r.sqlite") as store:
            results = run_configs(configs(tmp_path, range(2)), store=store, workers=workers,
                                  progress=lambda _: None, run_fn=threads_seen)
        assert [r.ms_per_step for r in results.values()] == [1.0, 1.0]
        assert torch.get_num_threads() == 3  # the driver's own setting is restored
    finally:
        torch.set_num_threads(previous)


def test_a_run_function_workers_cannot_import_is_refused_before_anything_runs(tmp_path: Path) -> None:
    runs = configs(tmp_path, range(2))
    with RunStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(TypeError, match=r"cannot be sent to worker processes .* or workers=1"):
            run_configs(runs, store=store, workers=2, run_fn=lambda config, **_: fake_result(config))
        assert store.statuses() == {}


def test_a_result_the_store_rejects_is_a_failed_run(tmp_path: Path) -> None:
    runs = configs(tmp_path, range(2))

    def broken_logs(config: RunConfig, **options: object) -> RunResult:
        result = sleepy_run(config, **options)
        if config.seed == 1:
            result.step_weights = result.step_weights[:-1]
        return result

    with RunStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(RunsFailedError, match=r"StoreError: run .* step_weights has 3 rows but steps has 4"):
            run_configs(runs, store=store, workers=1, progress=lambda _: None, run_fn=broken_logs)
        assert store.status(runs[0].run_id()) == "finished" and store.status(runs[1].run_id()) == "failed"


def test_bad_arguments_name_the_offending_value(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(ValueError, match=r"executor must be one of .* got 'gpu'"):
            run_configs([], store=store, executor="gpu")
        with pytest.raises(ValueError, match="workers must be an integer ≥ 1, got 0"):
            run_configs([], store=store, workers=0)
        with pytest.raises(ValueError, match="address='auto' is only used with executor='ray'"):
            run_configs([], store=store, address="auto")


def test_line_progress_counts_and_estimates() -> None:
    lines: list[str] = []
    progress = LineProgress(lines.append)
    config = RunConfig(method="uwso", method_options={"temperature": 5.0}, seed=1)
    progress.start(total=2, skipped=0, where="on a local pool of 2 workers")
    progress.run_finished(config, 3.25, None)
    progress.run_finished(config, 1.0, "Traceback ...\nValueError: boom\n")
    progress.close()
    assert lines[0] == "running 2 runs on a local pool of 2 workers (0 already finished, skipped)"
    assert lines[1].startswith(f"[1/2] finished uwso(temperature=5.0) lr=0.001 seed=1 [{config.run_id()}] in 3.2 s")
    assert lines[2].startswith("[2/2] FAILED (ValueError: boom) uwso") and lines[2].endswith("about 0s left")
    assert lines[3].startswith("2/2 runs ended, 1 failed in ")


def test_bar_progress_draws_one_bar_that_reaches_the_total(tmp_path: Path) -> None:
    screen = StringIO()
    progress = BarProgress(Console(file=screen, force_terminal=True, width=100))
    with RunStore(tmp_path / "r.sqlite") as store:
        run_configs(configs(tmp_path, range(3)), store=store, workers=1, progress=progress, run_fn=sleepy_run)
    text = screen.getvalue()
    assert "3/3" in text and "runs in-process" in text and "FAILED" not in text


def _finished(database: Path) -> set[str]:
    if not database.exists():
        return set()
    with sqlite3.connect(database, timeout=30) as db:
        try:
            return {r for (r,) in db.execute("SELECT run_id FROM runs WHERE status = 'finished'")}
        except sqlite3.OperationalError:  # the driver has not created the tables yet
            return set()


@pytest.mark.slow
@pytest.mark.parametrize("resume_workers", [2, 1])
def test_a_killed_sweep_resumes_without_redoing_finished_runs(tmp_path: Path, resume_workers: int) -> None:
    """Started with 2 workers, killed, resumed with ``resume_workers``: the store equals an uninterrupted sweep's.

    The runs' results depend on their torch thread count (``thread_sensitive``) and the driver has 3 threads, so
    resuming in the driver (1 worker) gives the same results only if every run trains with the same thread count.
    """
    runs, epochs, sleep = 6, 4, 0.25
    arguments = [str(tmp_path), str(runs), str(epochs), str(sleep)]
    command = [sys.executable, str(HERE / "sweep_driver.py"), *arguments, "2", "thread_sensitive"]
    database = tmp_path / "results.sqlite"
    delay = random.Random(20240813).uniform(0.0, 0.8)

    # The first sweep is killed (with its workers: the whole session) a seeded moment after two runs finished.
    driver = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_finished(database)) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()

    finished_before = _finished(database)
    config_list = sweep_configs(tmp_path, runs, epochs, sleep, thread_sensitive=True)
    markers = tmp_path / "markers"
    started_before = {c.run_id() for c in config_list if invocations(markers, c.run_id())}
    checkpoints = {p.stem: int(p.read_text()) for p in (tmp_path / "checkpoints").glob("*.pt")}
    interrupted = started_before - finished_before
    assert 2 <= len(finished_before) < runs and 1 <= len(interrupted) <= 2

    resume = [sys.executable, str(HERE / "sweep_driver.py"), *arguments, str(resume_workers), "thread_sensitive"]
    subprocess.run(resume, check=True, timeout=60, stdout=subprocess.DEVNULL)

    for config in config_list:
        run_id = config.run_id()
        calls = invocations(markers, run_id)
        if run_id in finished_before:
            assert len(calls) == 1, f"finished run {run_id} was trained again"
        elif run_id in interrupted:
            assert len(calls) == 2
            # The rerun resumed after the checkpointed epoch (epoch 1 when none was written).
            assert calls[1][0] == checkpoints.get(run_id, 0) + 1
        else:
            assert len(calls) == 1 and calls[0][0] == 1
    uninterrupted = {c.run_id(): fake_result(c) for c in config_list}
    for result in uninterrupted.values():
        result.epochs[-1].test["a/acc"] += 1  # one torch thread, as in a pool worker
    with RunStore(database) as store:
        assert {c.run_id(): store.get(c.run_id()) for c in config_list} == uninterrupted
    assert all(threads == 1 for c in config_list for _, _, threads in invocations(markers, c.run_id()))
    with sqlite3.connect(database) as db:
        counts = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "epochs", "step_values")]
    # 6 runs × 4 epochs; 8 logged steps × 2 tasks each.
    assert counts == [6, 24, 96]
    assert not list((tmp_path / "checkpoints").glob("*.pt"))


def test_a_worker_that_dies_fails_only_its_own_run(tmp_path: Path) -> None:
    # Seed 1's worker dies (os._exit, as an out-of-memory kill would); seed 0 trains beside it at the time.
    runs = configs(tmp_path, range(3), sleep=0.5)
    with RunStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(RunsFailedError) as caught:
            run_configs(runs, store=store, workers=2, run_fn=crashing_run)
        assert list(caught.value.failures) == [runs[1].run_id()]
        assert "the worker process died while training this run alone" in caught.value.failures[runs[1].run_id()]
        assert [store.status(c.run_id()) for c in runs] == ["finished", "failed", "finished"]
        assert store.get(runs[0].run_id()) == fake_result(runs[0])
