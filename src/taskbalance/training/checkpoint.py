"""Atomic checkpoints: a run killed at any moment resumes from its last finished epoch.

A checkpoint is ``{run_id}.pt`` in the run's checkpoint folder. It is written to a temporary file in the same folder
and moved into place with ``os.replace``, so a reader sees the old file or the complete new one; a process killed
during the write leaves only a temporary ``.{run_id}.pt.*.tmp`` file, which the next start of the run removes.
A checkpoint names the run it belongs to, and a file that belongs to another run (or has another format) is refused
with a :class:`CheckpointError` that names the file, instead of being resumed silently.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = 2
"""Version of the checkpoint's content; a checkpoint of another version is refused, not half-loaded."""


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be resumed from: unreadable, of another run, or of another format."""


def save_atomically(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` so that a reader sees either the old file or the complete new one.

    The state goes to a temporary file in the same folder, is flushed to disk, and replaces ``path`` with
    ``os.replace`` (atomic on POSIX and Windows).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files a killed :func:`save_atomically` of ``path`` left behind; return them.

    Only this run's own temporaries are touched (the run is not being written by anyone else while it starts).
    """
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for temporary in stale:
        temporary.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: Path, run_id: str, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The checkpoint of run ``run_id`` at ``path``, or None when there is none.

    Loaded with ``weights_only=True`` onto ``map_location`` (so a run interrupted on one device resumes on another).

    Raises:
        CheckpointError: the file is unreadable (truncated, not a checkpoint), belongs to another run, or has another
            format version; the message names the file and what to do.
    """
    if not path.exists():
        return None
    remedy = "delete it to restart the run from its first epoch"
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); {remedy}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {path} has format {found!r}, this version of taskbalance writes {FORMAT}; {remedy}"
        )
    if state.get("run_id") != run_id:
        raise CheckpointError(f"checkpoint {path} belongs to run {state.get('run_id')!r}, not to {run_id!r}; {remedy}")
    return state
