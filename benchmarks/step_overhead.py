"""Per-step cost of every loss weighting, as a ratio to equal weighting (EW).

One process, one small 3-head CNN (random 28×28 inputs, batch 256), the same initial weights and the same batches for
every method. A timed step is the whole training step: forward, weighting, backward, optimizer step (Adam over the
model and the method's own parameters). Methods are interleaved step by step (every method takes batch i back to
back, in an order rotated each time), so drift of the machine (other processes, thermal state) hits all of them
alike; each method's median step time over all its steps is then divided by EW's.

Example:
    python benchmarks/step_overhead.py --threads 1 --steps 20 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from taskbalance.weighting import WEIGHTINGS, LossWeighting, create

# Hyper-parameters for methods whose defaults are not representative of use.
OPTIONS: dict[str, dict[str, object]] = {
    "scalarization": {"weights": [0.2, 0.3, 0.5]},
    "uw": {"kinds": ["classification", "classification", "regression"]},
    "uwso": {"temperature": 2.0},
    "rlw": {"seed": 0},
}


class ThreeHeadCNN(nn.Module):
    """Shared two-conv encoder; two 10-way classification heads and one scalar regression head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 64),
            nn.ReLU(),
        )
        self.heads = nn.ModuleList([nn.Linear(64, 10), nn.Linear(64, 10), nn.Linear(64, 1)])

    def forward(self, inputs: Tensor) -> list[Tensor]:
        features = self.encoder(inputs)
        return [head(features) for head in self.heads]


Batch = tuple[Tensor, Tensor, Tensor, Tensor]


def make_batches(count: int, batch_size: int, seed: int) -> list[Batch]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch_size, 1, 28, 28, generator=generator),
            torch.randint(0, 10, (batch_size,), generator=generator),
            torch.randint(0, 10, (batch_size,), generator=generator),
            torch.rand(batch_size, 1, generator=generator),
        )
        for _ in range(count)
    ]


class Trainer:
    """A model copy, a method and an Adam optimizer; ``step`` returns the wall time of one training step."""

    def __init__(self, name: str, initial_state: dict[str, Tensor]) -> None:
        self.name = name
        self.model = ThreeHeadCNN()
        self.model.load_state_dict(initial_state)
        self.method: LossWeighting = create(name, num_tasks=3, **OPTIONS.get(name, {}))
        self.optimizer = torch.optim.Adam(
            [
                {"params": list(self.model.parameters())},
                {"params": list(self.method.parameters()), "weight_decay": 0.0},
            ],
            lr=1e-3,
        )

    def step(self, batch: Batch) -> tuple[float, float]:
        """Wall seconds of the whole step and of the weighting call alone (its forward)."""
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.losses(batch)
        weighting_start = time.perf_counter()
        total = self.method(losses)
        weighting_seconds = time.perf_counter() - weighting_start
        total.backward()
        self.optimizer.step()
        if self.method.needs_losses_after_step:  # FAMO: the same batch's losses after the step, part of its cost
            with torch.no_grad():
                self.method.after_step(self.losses(batch))
        return time.perf_counter() - start, weighting_seconds

    def losses(self, batch: Batch) -> Tensor:
        inputs, left, right, target = batch
        left_logits, right_logits, regression = self.model(inputs)
        return torch.stack(
            [F.cross_entropy(left_logits, left), F.cross_entropy(right_logits, right), F.l1_loss(regression, target)]
        )


def measure(
    names: Sequence[str], steps: int, repeats: int, batch_size: int, warmup: int
) -> dict[str, list[tuple[float, float]]]:
    """Per method, (step, weighting call) seconds of every timed step."""
    torch.manual_seed(0)
    initial_state = ThreeHeadCNN().state_dict()
    batches = make_batches(steps, batch_size, seed=1)
    trainers = [Trainer(name, initial_state) for name in names]
    for trainer in trainers:
        for batch in batches[:warmup]:
            trainer.step(batch)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    round_index = 0
    for _ in range(repeats):
        for batch in batches:
            # Every method takes this batch back to back, in an order rotated each round so none is always first.
            shift = round_index % len(trainers)
            for trainer in trainers[shift:] + trainers[:shift]:
                times[trainer.name].append(trainer.step(batch))
            round_index += 1
    return times


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method per repeat (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds over all methods (default 5)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per method first (default 3)")
    parser.add_argument("--methods", nargs="*", default=WEIGHTINGS.names(), help="registry names (default all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = ["ew"] + [name for name in args.methods if name != "ew"]
    times = measure(names, args.steps, args.repeats, args.batch_size, args.warmup)
    baseline = statistics.median(step for step, _ in times["ew"])
    settings = f"threads={args.threads} steps={args.steps} repeats={args.repeats} batch={args.batch_size}"
    print(f"{settings} torch={torch.__version__}")
    print(f"{'method':<14}{'median ms/step':>16}{'ratio to EW':>14}{'weighting µs':>14}")
    for name in names:
        median = statistics.median(step for step, _ in times[name])
        weighting = statistics.median(call for _, call in times[name])
        print(f"{name:<14}{median * 1e3:>16.2f}{median / baseline:>14.3f}{weighting * 1e6:>14.0f}")


if __name__ == "__main__":
    main()
