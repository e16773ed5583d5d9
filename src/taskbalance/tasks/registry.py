"""``TASKS``: task-kind name → task class; each class registers itself with ``@TASKS.register``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskbalance.registry import Registry

if TYPE_CHECKING:
    from taskbalance.tasks.base import Task

TASKS: Registry[Task] = Registry("task kind")
