"""Training-step time of the embedded models with the encoder in channels-last memory format, as a ratio to the
default (contiguous, NCHW) format.

One process; for each model (``multilenet`` and ``small_cnn`` with MultiFashion's three heads, batch 256, random
36×36 inputs) both variants are built from the same seed, so they start from the same weights. A timed step is the
whole EW training step: forward, the three task losses, backward, Adam. The two variants are interleaved step by
step (each takes batch i back to back, in an order swapped every step), so drift of the machine hits both alike;
each variant's median step time is reported with the ratio channels-last / contiguous (below 1: channels-last is
faster). The difference of the two variants' losses after the last step is printed too, as a check that they train
the same model (equal up to floating-point rounding, not bit for bit).

Example:
    python benchmarks/memory_format.py --threads 1 --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor
from torch.nn import functional as F

from taskbalance import models
from taskbalance.models.base import MultiTaskModel
from taskbalance.types import HeadSpec

HEADS = {"left": HeadSpec(10, dense=False), "right": HeadSpec(10, dense=False),
         "depth": HeadSpec(1, dense=True, size=(9, 9))}
MODELS = ("multilenet", "small_cnn")


def build(name: str, channels_last: bool) -> tuple[MultiTaskModel, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = models.create(name, heads=HEADS, in_channels=1, channels_last=channels_last)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def step(model: MultiTaskModel, optimizer: torch.optim.Optimizer, batch: tuple[Tensor, ...]) -> tuple[float, float]:
    inputs, left, right, depth = batch
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    out = model(inputs)
    loss = F.cross_entropy(out["left"], left) + F.cross_entropy(out["right"], right) + F.l1_loss(out["depth"], depth)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start, float(loss.detach())


def batches(count: int, batch_size: int) -> list[tuple[Tensor, ...]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(batch_size, 1, 36, 36, generator=g), torch.randint(0, 10, (batch_size,), generator=g),
             torch.randint(0, 10, (batch_size,), generator=g), torch.rand(batch_size, 1, 9, 9, generator=g))
            for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = batches(args.warmup + args.steps, args.batch_size)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, {args.steps} timed steps "
          f"after {args.warmup} warm-up steps; median ms per EW training step")
    print()
    print("| model | contiguous ms | channels-last ms | channels-last / contiguous | loss difference after |")
    print("|---|---:|---:|---:|---:|")
    for name in MODELS:
        variants = {layout: build(name, layout) for layout in (False, True)}
        times: dict[bool, list[float]] = {False: [], True: []}
        losses: dict[bool, float] = {}
        for index, batch in enumerate(data):
            order = (False, True) if index % 2 == 0 else (True, False)
            for layout in order:
                seconds, losses[layout] = step(*variants[layout], batch)
                if index >= args.warmup:
                    times[layout].append(seconds)
        plain, fast = (statistics.median(times[layout]) * 1000 for layout in (False, True))
        print(f"| {name} | {plain:.1f} | {fast:.1f} | {fast / plain:.2f} | {abs(losses[True] - losses[False]):.1e} |")


if __name__ == "__main__":
    main()
