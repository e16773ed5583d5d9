"""Progress of a sweep, drawn by the driver only: a rich bar on a terminal, plain lines otherwise (CI logs).

Workers never draw: the driver reports each run as it ends (and, when runs train in-process, each epoch).

Example:
    >>> lines = []
    >>> progress = LineProgress(lines.append)
    >>> progress.start(total=2, skipped=1, where="in-process")
    >>> lines[0]
    'running 2 runs in-process (1 already finished, skipped)'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from taskbalance.execution.outcome import describe
from taskbalance.training.config import RunConfig
from taskbalance.training.result import EpochRecord

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


@runtime_checkable
class RunProgress(Protocol):
    """What :func:`taskbalance.execution.run_configs` reports while a sweep runs."""

    def start(self, total: int, skipped: int, where: str) -> None:
        """``total`` runs are about to run; ``skipped`` were already finished in the store."""

    def epoch(self, config: RunConfig, record: EpochRecord) -> None:
        """A run finished an epoch (reported only for runs trained in the driver process)."""

    def run_finished(self, config: RunConfig, seconds: float, error: str | None) -> None:
        """A run ended after ``seconds``; ``error`` is its traceback when it failed."""

    def close(self) -> None:
        """The sweep is over (also after an interruption)."""


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class LineProgress:
    """One plain line per finished or failed run, with the count, the elapsed time and an estimate of the rest."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.total = 0
        self.done = 0
        self.failed = 0
        self._started = time.perf_counter()

    def start(self, total: int, skipped: int, where: str) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self._started = time.perf_counter()
        self.emit(f"running {total} runs {where} ({skipped} already finished, skipped)")

    def epoch(self, config: RunConfig, record: EpochRecord) -> None:
        pass  # one line per epoch would drown a CI log

    def run_finished(self, config: RunConfig, seconds: float, error: str | None) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self._started
        remaining = elapsed / self.done * (self.total - self.done)
        if error is None:
            state = "finished"
        else:
            self.failed += 1
            last_line = error.strip().splitlines()[-1] if error.strip() else "unknown error"
            state = f"FAILED ({last_line})"
        self.emit(
            f"[{self.done}/{self.total}] {state} {describe(config)} in {seconds:.1f} s; "
            f"elapsed {_duration(elapsed)}, about {_duration(remaining)} left"
        )

    def close(self) -> None:
        if self.total:
            failed = f", {self.failed} failed" if self.failed else ""
            elapsed = _duration(time.perf_counter() - self._started)
            self.emit(f"{self.done}/{self.total} runs ended{failed} in {elapsed}")


class BarProgress:
    """A single rich progress bar (runs done / total) with the latest event as its description.

    Args:
        console: where to draw (default: rich's console on stdout).
    """

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
            console=console,
        )
        self._task: TaskID | None = None
        self.failed = 0

    def start(self, total: int, skipped: int, where: str) -> None:
        self._progress.start()
        description = f"runs {where}" + (f" ({skipped} skipped)" if skipped else "")
        self._task = self._progress.add_task(description, total=total)

    def epoch(self, config: RunConfig, record: EpochRecord) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=f"{config.method} seed {config.seed}: epoch {record.epoch}")

    def run_finished(self, config: RunConfig, seconds: float, error: str | None) -> None:
        if self._task is None:
            return
        if error is not None:
            self.failed += 1
            self._progress.console.print(f"[red]FAILED[/red] {describe(config)}")
        self._progress.update(self._task, advance=1, description=f"{config.method} seed {config.seed} done")

    def close(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None


def make_progress(progress: Callable[[str], None] | RunProgress | None) -> RunProgress:
    """``None``: a bar when stdout is a terminal, else lines on stdout; a callable: lines through it."""
    if isinstance(progress, RunProgress):
        return progress
    if progress is not None:
        return LineProgress(progress)
    if sys.stdout.isatty():
        return BarProgress()
    return LineProgress(lambda line: print(line, flush=True))
