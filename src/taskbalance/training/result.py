"""What a finished run produces; plain data that serialises to JSON for the store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from taskbalance.training.config import RunConfig


@dataclass
class EpochRecord:
    """Metrics of one epoch.

    Attributes:
        epoch: 1-based epoch number.
        train_losses: task → mean training loss over the epoch.
        val: ``"task/metric"`` → value on the validation split after the epoch.
        test: ``"task/metric"`` → value on the test split after the epoch (selection never looks at it).
        mean_weights: task → mean weight the method gave the task over the epoch.
        lr: learning rate used during the epoch.
        seconds: wall time of the epoch, evaluation included.
    """

    epoch: int
    train_losses: dict[str, float]
    val: dict[str, float]
    test: dict[str, float]
    mean_weights: dict[str, float]
    lr: float
    seconds: float


@dataclass
class RunResult:
    """A finished run.

    Attributes:
        config: the run's configuration; ``run_id`` is its hash.
        tasks: the trained tasks, in order (the columns of ``step_weights``/``step_losses``).
        higher_is_better: ``"task/metric"`` → direction, for every metric in the records.
        epochs: one record per epoch.
        steps: the optimizer steps of the logged points (every ``config.log_every`` steps).
        step_weights: per logged step, the method's task weights.
        step_losses: per logged step, the task losses.
        ms_per_step: median wall milliseconds of a training step (forward, weighting, backward, optimizer step).
        peak_memory_mb: peak resident memory of the process (CPU) or peak allocated memory (CUDA), MiB.
        wall_seconds: wall time of the whole run.
        cpu_seconds: CPU time of the process over the run (all threads).
        environment: where it trained: ``device``, ``device_name`` (e.g. the GPU model), ``torch`` and ``cuda``
            versions (not part of the run's identity).
        method_diagnostics: the method's counts at the end of the run (:meth:`taskbalance.method.Method.diagnostics`,
            e.g. Nash-MTL's ``solve_failures``); empty for most methods.
    """

    config: RunConfig
    tasks: list[str]
    higher_is_better: dict[str, bool]
    epochs: list[EpochRecord]
    steps: list[int] = field(default_factory=list)
    step_weights: list[list[float]] = field(default_factory=list)
    step_losses: list[list[float]] = field(default_factory=list)
    ms_per_step: float = 0.0
    peak_memory_mb: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    method_diagnostics: dict[str, float] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.config.run_id()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_id"] = self.run_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        values = {k: v for k, v in data.items() if k != "run_id"}
        values["config"] = RunConfig.from_dict(values["config"])
        values["epochs"] = [EpochRecord(**record) for record in values["epochs"]]
        return cls(**values)
