"""A plugin: a loss weighting, a dataset and a model of your own in ``taskbalance bench``, taskbalance unchanged.

Importing this module registers, with the same decorators taskbalance's own entries use:

* ``uwo_ema`` — UW-O on a moving average of the losses, ``ω_k = 1 / EMA_β(sg[L_k])`` (a made-up variant that
  shows a weighting with state: the average is a buffer, so it is checkpointed and a resumed run continues it);
* ``lab_signals`` — a synthetic two-task dataset (4×4 inputs; the sign of their sum, and the mean of their
  absolute values);
* ``lab_mlp`` — a one-hidden-layer encoder and a linear head per task.

Name the module as a plugin and every process of the benchmark finds them::

    TASKBALANCE_PLUGINS=plugin_lab PYTHONPATH=examples taskbalance bench \\
        --dataset lab_signals --model lab_mlp --methods ew,uwo,uwo_ema

Run as a script, it does exactly that (``taskbalance`` in a subprocess, with the variable set)::

    python examples/plugin_lab.py --epochs 3 --out runs/plugin_lab

An installed package would name the module with an entry point of the group ``taskbalance.plugins`` instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from taskbalance.data import DATASETS
from taskbalance.data.base import MultiTaskData
from taskbalance.models import MODELS
from taskbalance.models.base import MultiTaskModel
from taskbalance.tasks import Classification, Regression
from taskbalance.types import HeadSpec
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("uwo_ema")
class UWOMovingAverage(LossWeighting):
    """``total = Σ_k L_k / a_k`` with ``a ← β·a + (1−β)·sg[L]`` (``a`` starts at the first losses).

    Example:
        >>> method = UWOMovingAverage(2, beta=0.5)
        >>> _ = method(torch.tensor([1.0, 4.0]))
        >>> _ = method(torch.tensor([3.0, 4.0]))
        >>> method.last_weights  # 1 / (0.5·[1, 4] + 0.5·[3, 4])
        tensor([0.5000, 0.2500])
    """

    formula = "Σ_k L_k / a_k, a ← β·a + (1−β)·sg[L]"
    label = "UW-O (EMA)"
    paper = "taskbalance example (not from a paper)"
    hyperparameters: ClassVar[dict[str, str]] = {"beta": "weight of the past in the moving average (default 0.9)"}
    requires_positive_losses = True

    def __init__(self, num_tasks: int, *, beta: float = 0.9, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"uwo_ema: beta must be in [0, 1), got {beta!r}")
        self.beta = float(beta)
        self.register_buffer("average", torch.ones(num_tasks))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        # The first call starts the average at the losses themselves, without a host sync on the flag.
        past = torch.where(self.started, self.average, values)
        self.average.copy_(self.beta * past + (1.0 - self.beta) * values)
        self.started.fill_(True)
        weights = self.average.reciprocal()
        return (weights * losses).sum(), weights


class _Signals(Dataset):
    def __init__(self, size: int, seed: int) -> None:
        self.inputs = torch.randn(size, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
        flat = self.inputs.flatten(1)
        self.sign = (flat.sum(1) > 0).long()
        self.magnitude = flat.abs().mean(1, keepdim=True)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.inputs[index], {"sign": self.sign[index], "magnitude": self.magnitude[index]}


@DATASETS.register("lab_signals")
def lab_signals(num_train: int = 512) -> MultiTaskData:
    """Train / validation / test splits of ``num_train`` / 128 / 128 samples, each split from its own seed."""
    tasks = {"sign": Classification("sign", 2), "magnitude": Regression("magnitude")}
    return MultiTaskData("lab_signals", _Signals(num_train, 0), _Signals(128, 1), _Signals(128, 2), tasks, (1, 4, 4))


@MODELS.register("lab_mlp")
def lab_mlp(heads: Mapping[str, HeadSpec], in_channels: int = 1, hidden: int = 32) -> MultiTaskModel:
    """``Flatten → Linear(16·C, hidden) → ReLU`` shared, then ``Linear(hidden, out)`` per task."""
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16 * in_channels, hidden), nn.ReLU())
    return MultiTaskModel(encoder, {name: nn.Linear(hidden, spec.out_channels) for name, spec in heads.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/plugin_lab"), help="the benchmark's folder")
    args = parser.parse_args(argv)
    here = str(Path(__file__).resolve().parent)
    environment = {**os.environ, "TASKBALANCE_PLUGINS": "plugin_lab",
                   "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, "-m", "taskbalance", "bench", "--dataset", "lab_signals", "--model", "lab_mlp",
               "--methods", "ew,uwo,uwo_ema", "--epochs", str(args.epochs), "--out", str(args.out)]
    return subprocess.run(command, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
