"""Test-wide settings: one torch thread (two threads slow 5x on this 2-core machine when anything else runs)."""

import os

import torch

torch.set_num_threads(1)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
