"""The durable results store: one SQLite file written by the driver process.

Every finished :class:`~taskbalance.training.result.RunResult` is written in ONE transaction (all-or-nothing) and can be
read back exactly; a run's status (``running`` / ``finished`` / ``failed``) lets a sweep skip finished runs and resume
the others. The schema is documented in ``docs/store.md``.

Example:
    >>> import tempfile, pathlib
    >>> from taskbalance.store import RunStore
    >>> from taskbalance.training import EpochRecord, RunConfig, RunResult
    >>> config = RunConfig(tasks=["a", "b"], epochs=1)
    >>> record = EpochRecord(1, {"a": 0.5, "b": 0.1}, {"a/acc": 0.8}, {"a/acc": 0.79}, {"a": 1.0, "b": 1.0}, 1e-3, 2.0)
    >>> result = RunResult(config, ["a", "b"], {"a/acc": True}, [record])
    >>> with RunStore(pathlib.Path(tempfile.mkdtemp()) / "results.sqlite") as store:
    ...     store.save(result)
    ...     store.status(config.run_id()), store.get(config.run_id()) == result
    ('finished', True)
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from taskbalance.training.config import ConfigError, RunConfig
from taskbalance.training.result import EpochRecord, RunResult

SCHEMA_VERSION = 1

# The four per-epoch mappings of an EpochRecord, stored in long format under these kinds.
EPOCH_KINDS: dict[str, str] = {
    "train_loss": "train_losses",
    "val": "val",
    "test": "test",
    "mean_weight": "mean_weights",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    method TEXT NOT NULL,
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    error TEXT,
    started REAL,
    finished REAL,
    tasks TEXT,
    higher_is_better TEXT,
    wall_seconds REAL,
    cpu_seconds REAL,
    ms_per_step REAL,
    peak_memory_mb REAL,
    environment TEXT,
    method_diagnostics TEXT
);
CREATE INDEX IF NOT EXISTS runs_method_dataset ON runs (method, dataset, status);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    lr REAL NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS epoch_values (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('train_loss', 'val', 'test', 'mean_weight')),
    key TEXT NOT NULL,
    position INTEGER NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, epoch, kind, key)
);
CREATE TABLE IF NOT EXISTS step_values (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    step INTEGER NOT NULL,
    task TEXT NOT NULL,
    weight REAL,
    loss REAL,
    PRIMARY KEY (run_id, position, task)
);
CREATE TABLE IF NOT EXISTS summaries (
    name TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class StoreError(RuntimeError):
    """The store file is unusable (not a database, damaged, wrong schema version) or a value cannot be stored.

    The message names the file or the run, and says what to do.
    """


def _float(value: float | None) -> float:
    # SQLite stores NaN as NULL; reading NULL back gives NaN again, so a NaN metric round-trips.
    return math.nan if value is None else float(value)


def _check_lengths(result: RunResult) -> None:
    logged = len(result.steps)
    for name in ("step_weights", "step_losses"):
        rows = getattr(result, name)
        if rows and len(rows) != logged:
            raise StoreError(f"run {result.run_id}: {name} has {len(rows)} rows but steps has {logged}")
        for index, row in enumerate(rows):
            if len(row) != len(result.tasks):
                raise StoreError(
                    f"run {result.run_id}: {name}[{index}] has {len(row)} values for {len(result.tasks)} tasks "
                    f"{result.tasks}"
                )
    if len(set(result.tasks)) != len(result.tasks):
        raise StoreError(f"run {result.run_id}: tasks lists a task twice: {result.tasks}")


class RunStore:
    """Runs, their per-epoch metrics, their logged task weights and benchmark summaries in one SQLite file.

    The connection runs in WAL mode with a busy timeout, so several processes may write to the same file; every
    write is one ``BEGIN IMMEDIATE`` transaction. A finished run is never downgraded: ``mark_running`` and
    ``mark_failed`` leave a finished run as it is.

    Args:
        path: the database file (created with its parent folder when missing).
        timeout: seconds to wait for another writer's lock before giving up.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a results store file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; every write opens its own explicit one below.
            self._connection = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._open(timeout)
        except (OSError, sqlite3.OperationalError) as error:
            # The file could not be created, opened or written (a parent that is a file, no permission, a read-only
            # file system): nothing is wrong with the store itself, so nothing should be moved or deleted.
            self.close()
            raise StoreError(f"cannot open the results store {self.path} for writing: {error} (check the path and "
                             "its permissions)") from None
        except sqlite3.DatabaseError as error:  # not a database, truncated, or damaged
            self.close()
            raise StoreError(
                f"{self.path} is not a readable taskbalance results store ({error}). Move it away (or delete it) "
                "to start a new store; to keep its runs, restore a copy taken together with its "
                f"{self.path.name}-wal file (docs/store.md)"
            ) from None
        except BaseException:
            self.close()
            raise

    def _open(self, timeout: float) -> None:
        connection = self.connection
        connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        # quick_check reads every page once (milliseconds for a benchmark's store): a truncated or damaged file is
        # refused now, by name, rather than failing halfway through a sweep.
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        with self._transaction() as db:
            db.executescript_statements(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif str(row[0]) != str(SCHEMA_VERSION):
                raise StoreError(f"{self.path}: schema version {row[0]}, this taskbalance reads {SCHEMA_VERSION}")
            columns = {info[1] for info in db.execute("PRAGMA table_info(runs)").fetchall()}
            if "environment" not in columns:  # stores written before results recorded their device
                db.execute("ALTER TABLE runs ADD COLUMN environment TEXT")
            if "method_diagnostics" not in columns:  # stores written before methods reported counts
                db.execute("ALTER TABLE runs ADD COLUMN method_diagnostics TEXT")

    # -- connection -----------------------------------------------------------------------------------------------
    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._connection

    @contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield _Cursor(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, so that the file alone holds every stored run.

        PASSIVE never waits for other connections; it copies what no reader still needs, which is everything when
        the driver is the only user (a copy of the file alone then holds the run just saved).
        """
        self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- status ---------------------------------------------------------------------------------------------------
    def status(self, run_id: str) -> str | None:
        """``"running"``, ``"finished"``, ``"failed"``, or None for a run the store has never seen."""
        row = self.connection.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def statuses(self) -> dict[str, str]:
        """run_id → status of every run in the store."""
        return {rid: status for rid, status in self.connection.execute("SELECT run_id, status FROM runs")}

    def error(self, run_id: str) -> str | None:
        """The error text of a failed run (None otherwise)."""
        row = self.connection.execute("SELECT error FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else row[0]

    def _mark(self, config: RunConfig, status: str, error: str | None) -> None:
        now = time.time()
        with self._transaction() as db:
            # A finished run stays finished: a late or repeated mark must not hide a stored result.
            db.execute(
                """
                INSERT INTO runs (run_id, config, method, dataset, seed, status, error, started)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, error = excluded.error,
                    started = CASE WHEN excluded.status = 'running' THEN excluded.started ELSE runs.started END
                WHERE runs.status != 'finished'
                """,
                (config.run_id(), json.dumps(config.stored_dict()), config.method, config.dataset, config.seed, status,
                 error, now),
            )

    def mark_running(self, config: RunConfig) -> None:
        """Record that a run has started (or restarted); a finished run is left as it is."""
        self._mark(config, "running", None)

    def mark_failed(self, config: RunConfig, error: str) -> None:
        """Record that a run failed with ``error`` (e.g. a traceback); a finished run is left as it is."""
        self._mark(config, "failed", error)
        self._checkpoint()

    # -- finished runs ----------------------------------------------------------------------------------------------
    def save(self, result: RunResult) -> None:
        """Store a finished run in one transaction; saving the same run again replaces it (no duplicate rows)."""
        self._save(result, times=None)

    def merge_from(self, source: RunStore) -> list[str]:
        """Copy into this store every run that is finished in ``source`` but not here; return the copied run ids.

        For combining stores of the same sweep written on different machines (e.g. part of a sweep run on a GPU
        box): a run id names the experiment, not where it ran, so a run finished in both stores is the same
        experiment and this store's result is kept. Runs that are running or failed in ``source`` are not copied;
        one finished there replaces a running or failed row here. Each run keeps its start and finish times and
        its recorded environment (device, torch version). Benchmark summaries are not copied: rerunning the
        benchmark on the merged store trains nothing and recomputes them from the runs.

        Raises:
            StoreError: ``source`` is this very file, or a run's stored config no longer gives its run id (the
                source was written by a taskbalance whose run identity differs; nothing of that run is copied).

        Example:
            >>> import tempfile, pathlib
            >>> from taskbalance.training import EpochRecord, RunConfig, RunResult
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> record = EpochRecord(1, {"a": 0.5}, {"a/acc": 0.8}, {"a/acc": 0.7}, {"a": 1.0}, 1e-3, 2.0)
            >>> result = RunResult(RunConfig(tasks=["a"], epochs=1), ["a"], {"a/acc": True}, [record])
            >>> with RunStore(folder / "gpu.sqlite") as gpu, RunStore(folder / "cpu.sqlite") as cpu:
            ...     gpu.save(result)
            ...     copied = cpu.merge_from(gpu)
            ...     copied == [result.run_id], cpu.get(result.run_id) == result, cpu.merge_from(gpu)
            (True, True, [])
        """
        if source.path.resolve() == self.path.resolve():
            raise StoreError(f"{self.path}: cannot merge a store into itself")
        here = self.statuses()
        wanted = [run_id for run_id, status in sorted(source.statuses().items())
                  if status == "finished" and here.get(run_id) != "finished"]
        copied: list[str] = []
        for run_id in wanted:
            row = source.connection.execute(
                "SELECT " + _RUN_COLUMNS + ", started, finished FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            result = source._load(row[:-2])
            if result.run_id != run_id:
                raise StoreError(
                    f"{source.path}: run {run_id}'s stored config gives the run id {result.run_id}; the store was "
                    "written by a taskbalance whose run identity differs from this one's, so its runs cannot be "
                    f"merged (copied so far: {len(copied)})"
                )
            if self._save(result, times=(row[-2], row[-1]), keep_finished=True):
                copied.append(run_id)
        return copied

    def _save(
        self, result: RunResult, *, times: tuple[float | None, float | None] | None, keep_finished: bool = False
    ) -> bool:
        """``save``, with the run's (started, finished) times given (a merged run) or taken from now; False (nothing
        written) with ``keep_finished`` when the run is finished here already, checked inside the write's own
        transaction, so a run this store's sweep finished while a merge went on keeps its own result."""
        _check_lengths(result)
        run_id = result.run_id
        config = result.config
        epoch_rows = [(run_id, r.epoch, float(r.lr), float(r.seconds)) for r in result.epochs]
        if len({row[1] for row in epoch_rows}) != len(epoch_rows):
            raise StoreError(f"run {run_id}: an epoch number appears twice: {[row[1] for row in epoch_rows]}")
        value_rows = [
            (run_id, record.epoch, kind, key, position, float(value))
            for record in result.epochs
            for kind, attribute in EPOCH_KINDS.items()
            for position, (key, value) in enumerate(getattr(record, attribute).items())
        ]
        step_rows = [
            (
                run_id,
                position,
                int(step),
                task,
                float(result.step_weights[position][t]) if result.step_weights else None,
                float(result.step_losses[position][t]) if result.step_losses else None,
            )
            for position, step in enumerate(result.steps)
            for t, task in enumerate(result.tasks)
        ]
        with self._transaction() as db:
            if keep_finished and db.execute(
                "SELECT 1 FROM runs WHERE run_id = ? AND status = 'finished'", (run_id,)
            ).fetchone():
                return False
            now = time.time()
            if times is None:  # the run's own start, as mark_running recorded it
                row = db.execute("SELECT started FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                times = (row[0] if row else None, now)
            started = times[0] if times[0] is not None else now - result.wall_seconds
            finished = times[1] if times[1] is not None else now
            # Delete then insert: saving the same run twice leaves exactly one copy of every row.
            for table in ("step_values", "epoch_values", "epochs", "runs"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute(
                """
                INSERT INTO runs (run_id, config, method, dataset, seed, status, error, started, finished,
                    tasks, higher_is_better, wall_seconds, cpu_seconds, ms_per_step, peak_memory_mb, environment,
                    method_diagnostics)
                VALUES (?, ?, ?, ?, ?, 'finished', NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (run_id, json.dumps(config.stored_dict()), config.method, config.dataset, config.seed, started,
                 finished,
                 json.dumps(result.tasks), json.dumps(result.higher_is_better), float(result.wall_seconds),
                 float(result.cpu_seconds), float(result.ms_per_step), float(result.peak_memory_mb),
                 json.dumps(result.environment), json.dumps(result.method_diagnostics)),
            )
            db.executemany("INSERT INTO epochs VALUES (?, ?, ?, ?)", epoch_rows)
            db.executemany("INSERT INTO epoch_values VALUES (?, ?, ?, ?, ?, ?)", value_rows)
            db.executemany("INSERT INTO step_values VALUES (?, ?, ?, ?, ?, ?)", step_rows)
        self._checkpoint()
        return True

    def get(self, run_id: str) -> RunResult | None:
        """The finished run, or None when the run is unknown, running or failed."""
        row = self.connection.execute(
            "SELECT " + _RUN_COLUMNS + " FROM runs WHERE run_id = ? AND status = 'finished'", (run_id,)
        ).fetchone()
        return None if row is None else self._load(row)

    def results(self, method: str | None = None, dataset: str | None = None) -> list[RunResult]:
        """Every finished run (optionally of one method and/or dataset), in the order they finished."""
        query = "SELECT " + _RUN_COLUMNS + " FROM runs WHERE status = 'finished'"
        parameters: list[str] = []
        if method is not None:
            query += " AND method = ?"
            parameters.append(method)
        if dataset is not None:
            query += " AND dataset = ?"
            parameters.append(dataset)
        rows = self.connection.execute(query + " ORDER BY finished, run_id", parameters).fetchall()
        return [self._load(row) for row in rows]

    def _load(self, row: tuple[Any, ...]) -> RunResult:
        run_id, config, tasks, higher, wall, cpu, ms, memory, environment, diagnostics = row
        connection = self.connection
        records: dict[int, dict[str, Any]] = {}
        for epoch, lr, seconds in connection.execute(
            "SELECT epoch, lr, seconds FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
        ):
            records[epoch] = {"epoch": epoch, "lr": lr, "seconds": seconds, **{a: {} for a in EPOCH_KINDS.values()}}
        for epoch, kind, key, value in connection.execute(
            "SELECT epoch, kind, key, value FROM epoch_values WHERE run_id = ? ORDER BY epoch, kind, position",
            (run_id,),
        ):
            records[epoch][EPOCH_KINDS[kind]][key] = _float(value)
        task_names: list[str] = json.loads(tasks)
        column = {task: index for index, task in enumerate(task_names)}
        steps: list[int] = []
        weights: list[list[float]] = []
        losses: list[list[float]] = []
        has_weights = has_losses = False
        for position, step, task, weight, loss in connection.execute(
            "SELECT position, step, task, weight, loss FROM step_values WHERE run_id = ? ORDER BY position",
            (run_id,),
        ):
            if position == len(steps):
                steps.append(step)
                weights.append([math.nan] * len(task_names))
                losses.append([math.nan] * len(task_names))
            weights[position][column[task]] = _float(weight)
            losses[position][column[task]] = _float(loss)
            has_weights |= weight is not None
            has_losses |= loss is not None
        try:
            run_config = RunConfig.from_dict(json.loads(config))
        except ConfigError as error:
            raise StoreError(
                f"{self.path}: the stored config of run {run_id} is not one this taskbalance reads ({error}); the "
                "store was probably written by another version of taskbalance"
            ) from None
        return RunResult(
            config=run_config,
            tasks=task_names,
            higher_is_better=json.loads(higher),
            epochs=[EpochRecord(**record) for record in records.values()],
            steps=steps,
            step_weights=weights if has_weights else [],
            step_losses=losses if has_losses else [],
            ms_per_step=_float(ms),
            peak_memory_mb=_float(memory),
            wall_seconds=_float(wall),
            cpu_seconds=_float(cpu),
            environment=json.loads(environment) if environment else {},
            method_diagnostics=json.loads(diagnostics) if diagnostics else {},
        )

    # -- summaries ------------------------------------------------------------------------------------------------
    def save_summary(self, name: str, summary: Mapping[str, Any]) -> None:
        """Store (or replace) a benchmark summary, given as plain data (e.g. ``BenchSummary.to_dict()``)."""
        try:
            text = json.dumps(dict(summary), allow_nan=True)
        except (TypeError, ValueError) as error:
            raise StoreError(f"summary {name!r} is not JSON-serialisable: {error}") from None
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO summaries (name, summary, created) VALUES (?, ?, ?)",
                       (name, text, time.time()))
        self._checkpoint()

    def load_summary(self, name: str) -> dict[str, Any] | None:
        """The summary saved under ``name`` as plain data (``BenchSummary.from_dict`` rebuilds it), or None."""
        row = self.connection.execute("SELECT summary FROM summaries WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def summary_names(self) -> list[str]:
        return [name for (name,) in self.connection.execute("SELECT name FROM summaries ORDER BY created, name")]


_RUN_COLUMNS = (
    "run_id, config, tasks, higher_is_better, wall_seconds, cpu_seconds, ms_per_step, peak_memory_mb, environment, "
    "method_diagnostics"
)


class _Cursor:
    """The connection inside one transaction (``executescript`` would commit it, so statements run one by one)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        return self._connection.execute(sql, parameters)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._connection.executemany(sql, rows)

    def executescript_statements(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self._connection.execute(statement)
