"""Everything a run carries from one epoch to the next, and its checkpoint form."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from taskbalance.method import Method
from taskbalance.models.base import MultiTaskModel
from taskbalance.training.checkpoint import FORMAT
from taskbalance.training.result import EpochRecord


@dataclass
class TrainingState:
    """The model, the method, the optimizer, scheduler and fp16 loss scaler, and what the run has recorded so far.

    :meth:`checkpoint` is the whole state as plain tensors and lists (``torch.load(weights_only=True)`` reads it);
    :meth:`restore` puts a checkpoint back. The method's state — parameters, buffers, random generators, counters —
    is all in ``method.state_dict()``.

    Attributes:
        records: one record per finished epoch.
        steps, step_weights, step_losses: the logged optimizer steps and each one's task weights and losses.
        step_times: wall seconds of every optimizer step.
        global_step: optimizer steps taken.
        wall_offset, cpu_offset: wall and CPU seconds spent before the last resume.
    """

    model: MultiTaskModel
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    records: list[EpochRecord] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    step_weights: list[list[float]] = field(default_factory=list)
    step_losses: list[list[float]] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    global_step: int = 0
    wall_offset: float = 0.0
    cpu_offset: float = 0.0
    wall_start: float = field(default_factory=time.perf_counter)
    cpu_start: float = field(default_factory=time.process_time)

    @property
    def next_epoch(self) -> int:
        return len(self.records) + 1

    def wall_seconds(self) -> float:
        return self.wall_offset + time.perf_counter() - self.wall_start

    def cpu_seconds(self) -> float:
        return self.cpu_offset + time.process_time() - self.cpu_start

    def checkpoint(self, run_id: str) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "run_id": run_id,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "records": [asdict(record) for record in self.records],
            "steps": self.steps,
            "step_weights": self.step_weights,
            "step_losses": self.step_losses,
            "step_times": self.step_times,
            "global_step": self.global_step,
            "wall_seconds": self.wall_seconds(),
            "cpu_seconds": self.cpu_seconds(),
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.method.load_state_dict(checkpoint["method"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.records = [EpochRecord(**record) for record in checkpoint["records"]]
        self.steps = checkpoint["steps"]
        self.step_weights = checkpoint["step_weights"]
        self.step_losses = checkpoint["step_losses"]
        self.step_times = checkpoint["step_times"]
        self.global_step = checkpoint["global_step"]
        self.wall_offset, self.cpu_offset = checkpoint["wall_seconds"], checkpoint["cpu_seconds"]
        self.wall_start, self.cpu_start = time.perf_counter(), time.process_time()
