"""Two gloo ranks on CPU: every method's step with ``sync_across_ranks`` equals one process on the global batch.

Each rank gets half of a global batch; after k optimizer steps the parameters of both ranks must be identical and
equal (float64, tight tolerance) to those of a single process that trains on the whole batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from taskbalance import distributed, methods

STEPS = 3
GLOBAL_BATCH = 8
CASES: list[tuple[str, dict]] = [
    ("ew", {}),
    ("uw", {}),
    ("uwso", {"temperature": 0.5}),
    ("rlw", {"seed": 3}),
    ("famo", {}),
    ("mgda", {"mode": "parameters"}),
    ("mgda", {"mode": "representation"}),
    ("nashmtl", {"mode": "parameters"}),
    ("nashmtl", {"mode": "representation"}),
    ("cagrad", {"mode": "representation"}),
    ("pcgrad", {}),
    ("pcgrad", {"mode": "representation", "weighting": "uw"}),
    ("graddrop", {"mode": "parameters"}),
    ("graddrop", {"mode": "representation", "leak": 0.25}),
    ("fairgrad", {"mode": "representation", "alpha": 2.0}),
    ("sdmgrad", {"mode": "parameters"}),
    ("dbmtl", {"mode": "parameters"}),
    ("gradnorm", {"mode": "parameters"}),
]


class _TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(5, 6), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(6, 1), nn.Linear(6, 3), nn.Linear(6, 2)])

    def losses(self, x: torch.Tensor, targets: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        rep = self.encoder(x)
        regression = ((self.heads[0](rep) - targets[0]) ** 2).mean()
        classification = nn.functional.cross_entropy(self.heads[1](rep), targets[1])
        absolute = (self.heads[2](rep) - targets[2]).abs().mean()
        return [regression, classification, absolute], rep


def _batch() -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS, GLOBAL_BATCH, 5, generator=g, dtype=torch.float64)
    targets = [
        torch.randn(STEPS, GLOBAL_BATCH, 1, generator=g, dtype=torch.float64),
        torch.randint(0, 3, (STEPS, GLOBAL_BATCH), generator=g),
        torch.randn(STEPS, GLOBAL_BATCH, 2, generator=g, dtype=torch.float64),
    ]
    return x, targets


def _train(name: str, options: dict, shard: slice, sync: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = _TinyModel().double()
    method = methods.create(name, 3, **options, **({"sync_across_ranks": True} if sync else {})).double()
    optimizer = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=0.05)
    x, targets = _batch()
    for step in range(STEPS):
        batch = [t[step][shard] for t in targets]
        optimizer.zero_grad()
        losses, rep = model.losses(x[step][shard], batch)
        method.step(losses, shared_parameters=model.encoder.parameters(), representation=rep)
        optimizer.step()
        if method.needs_losses_after_step:
            with torch.no_grad():
                after, _ = model.losses(x[step][shard], batch)
            method.after_step(torch.stack(after))
    return {**{f"model.{k}": v for k, v in model.state_dict().items()}, "weights": method.last_weights.clone()}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    with distributed.leaving_together():
        half = GLOBAL_BATCH // 2
        results = {}
        for index, (name, options) in enumerate(CASES):
            distributed.traffic.reset()
            results[index] = _train(name, options, slice(rank * half, (rank + 1) * half), sync=True)
            results[index]["bytes"] = torch.tensor(distributed.traffic.bytes)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(folder / "init"), str(folder)), nprocs=2, join=True)
    return [torch.load(folder / f"rank{rank}.pt") for rank in range(2)]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{n}-{o}" for n, o in CASES])
def test_two_ranks_equal_one_process_on_the_global_batch(two_rank_results: list[dict], index: int) -> None:
    name, options = CASES[index]
    single = _train(name, options, slice(0, GLOBAL_BATCH), sync=False)
    first, second = (two_rank_results[r][index] for r in range(2))
    for key, expected in single.items():
        assert torch.equal(first[key], second[key]), f"{name}: ranks differ in {key}"
        torch.testing.assert_close(first[key], expected, rtol=1e-9, atol=1e-12, msg=f"{name} {options}: {key}")


def test_loss_weightings_reduce_the_k_losses_once_plus_one_gradient(two_rank_results: list[dict]) -> None:
    num_gradients = sum(p.numel() for p in _TinyModel().parameters())
    per_step = {name: int(two_rank_results[0][index]["bytes"]) / STEPS
                for index, (name, options) in enumerate(CASES) if "mode" not in options and name != "pcgrad"}
    # float64: the K mean losses the weights are computed from, then the model's gradients; nothing twice.
    for name in ("ew", "uw", "uwso"):
        assert per_step[name] == 8 * (3 + num_gradients), name
    # RLW also broadcasts rank 0's K weights; FAMO also averages the K losses after the step (its update).
    assert per_step["rlw"] == 8 * (3 + 3 + num_gradients)
    assert per_step["famo"] == 8 * (3 + 3 + num_gradients)


def test_a_composed_weighting_takes_the_mean_losses_of_its_gradient_method(two_rank_results: list[dict]) -> None:
    num_shared = sum(p.numel() for p in _TinyModel().encoder.parameters())
    num_heads = sum(p.numel() for p in _TinyModel().heads.parameters())
    index = CASES.index(("pcgrad", {"mode": "representation", "weighting": "uw"}))
    # The gradient method averages the K losses once; its UW computes the scales from them without a second average.
    assert int(two_rank_results[0][index]["bytes"]) / STEPS == 8 * (3 + 9 + num_shared + num_heads)


def test_gram_methods_in_representation_mode_reduce_k_squared_numbers_plus_one_gradient(
    two_rank_results: list[dict],
) -> None:
    num_shared = sum(p.numel() for p in _TinyModel().encoder.parameters())
    num_heads = sum(p.numel() for p in _TinyModel().heads.parameters())
    per_step = {}
    for index, (name, options) in enumerate(CASES):
        per_step[(name, options.get("mode"))] = int(two_rank_results[0][index]["bytes"]) / STEPS
    # float64: 8 bytes; the losses (K) and the Gram (K²) plus the encoder's and the heads' gradients.
    rep = per_step[("mgda", "representation")]
    assert rep == 8 * (3 + 9 + num_shared + num_heads)
    # Parameters mode reduces the K per-task gradients of the encoder: O(K·P).
    assert per_step[("mgda", "parameters")] == 8 * (3 + 3 * num_shared + num_heads)
