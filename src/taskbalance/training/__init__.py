"""Training: a run's config, the plain training loop, atomic checkpoints and the run's result."""

from taskbalance.training.build import build
from taskbalance.training.config import ConfigError, RunConfig
from taskbalance.training.loop import TrainingDivergedError, evaluate, train
from taskbalance.training.result import EpochRecord, RunResult

__all__ = [
    "ConfigError",
    "EpochRecord",
    "RunConfig",
    "RunResult",
    "TrainingDivergedError",
    "build",
    "evaluate",
    "train",
]
