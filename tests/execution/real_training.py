"""A tiny registered dataset and model so that sweeps can call the real ``taskbalance.training.train``.

Importing this module registers ``exec_test_synthetic`` and ``exec_test_mlp`` (also in spawn workers, which import
it to unpickle :func:`train_tiny`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from taskbalance.data import DATASETS
from taskbalance.data.base import MultiTaskData
from taskbalance.models import MODELS
from taskbalance.models.base import MultiTaskModel
from taskbalance.tasks import Classification, Regression
from taskbalance.training import RunConfig, RunResult, train
from taskbalance.types import HeadSpec


class _Points(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 2, 4, generator=generator)
        flat = self.x.flatten(1)
        self.label = (flat[:, :4].sum(1) > 0).long()
        self.value = flat.mean(1, keepdim=True)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.x[index], {"sign": self.label[index], "mean": self.value[index]}


@DATASETS.register("exec_test_synthetic")
def exec_test_synthetic() -> MultiTaskData:
    tasks = {"sign": Classification("sign", 2), "mean": Regression("mean")}
    return MultiTaskData("exec_test_synthetic", _Points(64, 0), _Points(32, 1), _Points(32, 2), tasks, (1, 2, 4))


@MODELS.register("exec_test_mlp")
def exec_test_mlp(heads: Mapping[str, HeadSpec], in_channels: int = 1) -> MultiTaskModel:
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(8 * in_channels, 8), nn.ReLU())
    return MultiTaskModel(encoder, {name: nn.Linear(8, spec.out_channels) for name, spec in heads.items()})


def train_tiny(config: RunConfig, **options: Any) -> RunResult:
    return train(config, **options)
