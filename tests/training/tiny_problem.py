"""A tiny synthetic two-task problem (3-class classification + regression) and an MLP for fast loop tests."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from taskbalance.data.base import MultiTaskData
from taskbalance.models import MODELS
from taskbalance.models.base import MultiTaskModel
from taskbalance.tasks import Classification, Regression
from taskbalance.training import RunConfig
from taskbalance.types import HeadSpec


class Synthetic(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 4, 4, generator=g)
        flat = self.x.flatten(1)
        self.cls = (flat[:, :8].sum(1) > 0).long() + (flat[:, 8:].sum(1) > 1).long()
        self.reg = flat.mean(1, keepdim=True)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.x[i], {"cls": self.cls[i], "reg": self.reg[i]}


def synthetic_data() -> MultiTaskData:
    tasks = {"cls": Classification("cls", 3), "reg": Regression("reg")}
    return MultiTaskData("synthetic", Synthetic(96, 0), Synthetic(32, 1), Synthetic(32, 2), tasks, (1, 4, 4))


@MODELS.register("tiny_test_mlp")
def tiny_test_mlp(heads: Mapping[str, HeadSpec], in_channels: int = 1) -> MultiTaskModel:
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(16 * in_channels, 12), nn.ReLU())
    return MultiTaskModel(encoder, {name: nn.Linear(12, spec.out_channels) for name, spec in heads.items()})


def config(**changes: object) -> RunConfig:
    base = RunConfig(dataset="synthetic", model="tiny_test_mlp", epochs=3, batch_size=16, eval_batch_size=32, lr=1e-2)
    return base.replace(**changes)
