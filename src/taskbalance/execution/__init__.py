"""Execution of sweeps: a local spawn process pool (default) or Ray, with the results store written by the driver."""

from taskbalance.execution.progress import BarProgress, LineProgress, RunProgress
from taskbalance.execution.ray_tasks import RayUnavailableError
from taskbalance.execution.runner import EXECUTORS, RunsFailedError, run_configs

__all__ = [
    "EXECUTORS",
    "BarProgress",
    "LineProgress",
    "RayUnavailableError",
    "RunProgress",
    "RunsFailedError",
    "run_configs",
]
