"""Step time and peak memory of every gradient method, as ratios to EW and to a reference per-task loop.

For K = 2, 3, 5, 10 classification heads on a small CNN (input 1×36×36, batch 256, random data, same initial
weights for every variant), one timed step = forward, the variant's backward, SGD step. Variants:

- ``ew``: one backward of ``Σ_k L_k`` (the floor: no per-task gradient at all);
- ``reference``: the loop common libraries use — K ``loss_k.backward(retain_graph=True)`` calls, after each the
  shared ``.grad`` flattened and copied into row k of a K×P matrix and zeroed, then the SAME aggregation
  (``method.aggregate([matrix], scales)``), then the direction unflattened and copied into ``.grad``;
- ``parameters``: ``method.backward`` with ``mode="parameters"`` (per-task gradients of the shared parameters);
- ``representation``: ``method.backward`` with ``mode="representation"`` (per-task gradients of the shared
  representation, one encoder backward).

Variants are interleaved within every repeat so that drift of the shared machine hits all alike; the median step
time is reported. Memory (``--memory``, Linux): each (K, method, variant) runs in its own fresh process; the peak
resident set size is reset (``/proc/self/clear_refs``) right before the first of 3 steps, and the growth of the peak
(VmHWM) over the resident size at that moment is reported — the extra memory the steps needed at their peak
(allocator caching included), not an exact tensor count.

Example:
    python benchmarks/gradient_methods.py --threads 1 --steps 5 --tasks 2,3,5,10 --memory
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from taskbalance.aggregation import AGGREGATIONS, GradientAggregation, create
from taskbalance.models.base import MultiTaskModel

VARIANTS = ("ew", "reference", "parameters", "representation")


def small_cnn(num_tasks: int) -> MultiTaskModel:
    """Two conv blocks and a 64-unit embedding shared; one 10-way linear head per task (≈171k shared params)."""
    torch.manual_seed(0)
    encoder = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 9 * 9, 64),
        nn.ReLU(),
    )
    return MultiTaskModel(encoder, {f"t{k}": nn.Linear(64, 10) for k in range(num_tasks)})


def batch(num_tasks: int, size: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(size, 1, 36, 36, generator=generator)
    return inputs, torch.randint(0, 10, (num_tasks, size), generator=generator)


def reference_backward(method: GradientAggregation, losses: Tensor, shared: list[nn.Parameter]) -> None:
    """The per-task loop of common MTL libraries: retained backward, flatten-copy, aggregate, unflatten-copy."""
    num_tasks = losses.shape[0]
    sizes = [p.numel() for p in shared]
    matrix = torch.zeros(num_tasks, sum(sizes))
    for k in range(num_tasks):
        losses[k].backward(retain_graph=k < num_tasks - 1)
        offset = 0
        for p, size in zip(shared, sizes, strict=True):
            if p.grad is not None:
                matrix[k, offset : offset + size] = p.grad.view(-1)
                p.grad.zero_()
            offset += size
    scales = method.task_scales(losses.detach(), torch.ones(num_tasks))
    (direction,), weights = method.aggregate([matrix], scales)
    method.last_weights = weights.detach()
    offset = 0
    for p, size in zip(shared, sizes, strict=True):
        p.grad = direction[offset : offset + size].contiguous().view(p.shape).clone()
        offset += size


class Runner:
    """One model copy, one method instance and an SGD optimizer for one variant; ``step`` returns seconds."""

    def __init__(self, name: str, variant: str, num_tasks: int, state: dict[str, Tensor]) -> None:
        self.model = small_cnn(num_tasks)
        self.model.load_state_dict(state)
        self.variant = variant
        mode = "representation" if variant == "representation" else "parameters"
        self.method = create(name, num_tasks, mode=mode) if name != "ew" else None
        parameters = list(self.model.parameters()) + (list(self.method.parameters()) if self.method else [])
        self.optimizer = torch.optim.SGD(parameters, lr=1e-3)
        self.shared = list(self.model.shared_parameters())

    def step(self, inputs: Tensor, labels: Tensor) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        rep = self.model.shared(inputs)
        predictions = self.model.decode(rep)
        losses = torch.stack([F.cross_entropy(predictions[f"t{k}"], labels[k]) for k in range(labels.shape[0])])
        if self.variant == "ew":
            losses.sum().backward()
        elif self.variant == "reference":
            assert self.method is not None
            reference_backward(self.method, losses, self.shared)
        else:
            assert self.method is not None
            self.method.backward(losses, shared_parameters=self.shared, representation=rep)
        self.optimizer.step()
        return time.perf_counter() - start


def gradient_methods() -> list[str]:
    return [n for n in AGGREGATIONS.names() if issubclass(AGGREGATIONS.get(n), GradientAggregation)]


def time_methods(num_tasks: int, names: list[str], steps: int, warmup: int, batch_size: int) -> dict[str, dict]:
    """Median step seconds: ``{"ew": t, method: {variant: t}}``, all variants interleaved per repeat."""
    inputs, labels = batch(num_tasks, batch_size)
    state = small_cnn(num_tasks).state_dict()
    runners: dict[tuple[str, str], Runner] = {("ew", "ew"): Runner("ew", "ew", num_tasks, state)}
    for name in names:
        for variant in VARIANTS[1:]:
            runners[(name, variant)] = Runner(name, variant, num_tasks, state)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    keys = list(runners)
    for repeat in range(warmup + steps):
        shift = repeat % len(keys)
        for key in keys[shift:] + keys[:shift]:
            seconds = runners[key].step(inputs, labels)
            if repeat >= warmup:
                times[key].append(seconds)
    result: dict[str, dict] = {"ew": statistics.median(times[("ew", "ew")])}
    for name in names:
        result[name] = {variant: statistics.median(times[(name, variant)]) for variant in VARIANTS[1:]}
    return result


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_child(name: str, variant: str, num_tasks: int, steps: int, batch_size: int) -> None:
    """Runs in a fresh process: prints the peak RSS growth (MiB) over ``steps`` steps of one variant.

    Linux only: writing 5 to ``/proc/self/clear_refs`` resets the peak (VmHWM) to the current RSS, so the growth
    is measured from the state right before the first step (libraries, model and batch loaded), not from import.
    """
    inputs, labels = batch(num_tasks, batch_size)
    runner = Runner(name, variant, num_tasks, small_cnn(num_tasks).state_dict())
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_kib("VmRSS")
    for _ in range(steps):
        runner.step(inputs, labels)
    print(json.dumps({"mib": (_status_kib("VmHWM") - before) / 1024}))


def measure_memory(name: str, variant: str, num_tasks: int, args: argparse.Namespace) -> float:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        f"{name}:{variant}:{num_tasks}",
        "--threads",
        str(args.threads),
        "--batch",
        str(args.batch),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(json.loads(output.strip().splitlines()[-1])["mib"])


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base > 0 else "n/a"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after --warmup)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tasks", default="2,3,5,10", help="comma-separated K values")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--methods", default=",".join(gradient_methods()))
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS growth, one process per cell")
    parser.add_argument("--memory-methods", default="mgda", help="methods whose memory is measured")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        name, variant, num_tasks = args.memory_child.split(":")
        memory_child(name, variant, int(num_tasks), steps=3, batch_size=args.batch)
        return

    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, {args.steps} timed steps")
    print("| K | method | EW ms | reference ms | parameters ms | representation ms | param/ref | rep/ref | rep/EW |")
    print("|---|---|---|---|---|---|---|---|---|")
    for num_tasks in [int(k) for k in args.tasks.split(",")]:
        timings = time_methods(num_tasks, names, args.steps, args.warmup, args.batch)
        ew = timings["ew"]
        for name in names:
            t = timings[name]
            print(
                f"| {num_tasks} | {name} | {1000 * ew:.1f} | {1000 * t['reference']:.1f} | "
                f"{1000 * t['parameters']:.1f} | {1000 * t['representation']:.1f} | "
                f"{ratio(t['parameters'], t['reference'])} | {ratio(t['representation'], t['reference'])} | "
                f"{ratio(t['representation'], ew)} |",
                flush=True,
            )
    if args.memory:
        print("\nPeak RSS growth during 3 steps (MiB), one fresh process per cell")
        print("| K | method | EW | reference | parameters | representation |")
        print("|---|---|---|---|---|---|")
        for num_tasks in [int(k) for k in args.tasks.split(",")]:
            for name in [n.strip() for n in args.memory_methods.split(",") if n.strip()]:
                cells = [measure_memory("ew" if v == "ew" else name, v, num_tasks, args) for v in VARIANTS]
                print(f"| {num_tasks} | {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
