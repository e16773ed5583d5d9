"""Atomic checkpoints: a run killed at any moment resumes from its last finished epoch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (unreadable, truncated); the message names the file and what to do."""


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


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none. Loaded with ``weights_only=True``.

    Raises:
        CheckpointError: the file exists but cannot be read as a checkpoint.
    """
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file cannot come from save_atomically, but say which file it is
        raise CheckpointError(f"checkpoint {path} is unreadable ({error}); delete it to restart the run") from error
