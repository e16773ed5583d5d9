"""Step time and peak memory of every gradient method, as ratios to EW and to a reference per-task loop.

For K = 2, 3, 5, 10 classification heads on an embedded-dataset model from the registry (``--model``: ``multilenet``
by default, or ``small_cnn``; input 1×36×36, batch 256, random data, same initial weights for every variant), one
timed step = forward, the variant's backward, SGD step. Variants:

- ``ew``: one backward of ``Σ_k L_k`` (the floor: no per-task gradient at all);
- ``reference``: the loop common libraries use — K ``loss_k.backward(retain_graph=True)`` calls, after each the
  shared ``.grad`` flattened and copied into row k of a K×P matrix and zeroed, then the SAME aggregation
  (``method.aggregate([matrix], scales)``), then the direction unflattened and copied into ``.grad``;
- ``parameters``: ``method.backward`` with ``mode="parameters"`` (per-task gradients of the shared parameters);
- ``representation``: ``method.backward`` with ``mode="representation"`` (per-task gradients of the shared
  representation, one encoder backward);
- ``batched`` (only with ``--batched``): parameters mode with ``strategy="batched"`` (one vectorised autograd call
  instead of K), the option meant for accelerators.

In every repeat each method runs a block of steps (EW and its variants, rotating order); ratios are the
median over repeats of the ratios within a block (steps a fraction of a second apart), which cancels most of the
drift of a shared machine; step times are medians.

Memory: after timing, one more step of every variant runs under ``torch.profiler`` with ``profile_memory=True``;
the reported number is the peak, over the step, of the bytes of tensors allocated during the step and still alive
(frees of tensors allocated before the step — last step's gradients — are invisible to the profiler, alike for
every variant). It counts tensors (activations, saved graph buffers, per-task gradients, copies), not allocator
caching or Python objects: exact and repeatable, unlike process RSS on a shared machine.

Example:
    python benchmarks/gradient_methods.py --threads 1 --steps 5 --tasks 2,3,5,10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from taskbalance import models
from taskbalance.aggregation import AGGREGATIONS, GradientAggregation, create
from taskbalance.models.base import MultiTaskModel
from taskbalance.types import HeadSpec

VARIANTS: tuple[str, ...] = ("ew", "reference", "parameters", "representation")


def build_model(name: str, num_tasks: int) -> MultiTaskModel:
    """An embedded-dataset model from the registry with K 10-way classification heads, seeded."""
    torch.manual_seed(0)
    return models.create(name, heads={f"t{k}": HeadSpec(10, dense=False) for k in range(num_tasks)})


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

    def __init__(self, name: str, variant: str, num_tasks: int, state: dict[str, Tensor], model: str) -> None:
        self.model = build_model(model, num_tasks)
        self.model.load_state_dict(state)
        self.variant = variant
        mode = "representation" if variant == "representation" else "parameters"
        strategy = "batched" if variant == "batched" else "loop"
        self.method = create(name, num_tasks, mode=mode, strategy=strategy) if name != "ew" else None
        parameters = list(self.model.parameters()) + (list(self.method.parameters()) if self.method else [])
        self.optimizer = torch.optim.SGD(parameters, lr=1e-3)
        self.shared = list(self.model.shared_parameters())

    def step(self, inputs: Tensor, labels: Tensor) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        rep = self.model.shared(inputs)
        predictions = self.model.decode(rep)
        task_losses = [F.cross_entropy(predictions[f"t{k}"], labels[k]) for k in range(labels.shape[0])]
        losses = torch.stack(task_losses)
        if self.variant == "ew":
            losses.sum().backward()
        elif self.variant == "reference":
            assert self.method is not None
            reference_backward(self.method, losses, self.shared)
        else:
            assert self.method is not None
            # The list, as the training loop passes it: a task's gradient call then never enters the other heads.
            self.method.step(task_losses, shared_parameters=self.shared, representation=rep)
        self.optimizer.step()
        return time.perf_counter() - start


def gradient_methods() -> list[str]:
    """The methods the benchmark compares in both modes (ExcessMTL, DB-MTL and MoCo, parameters mode only, are left
    out)."""
    both = {"parameters", "representation"}
    return [n for n in AGGREGATIONS.names() if set(AGGREGATIONS.get(n).supported_modes) == both]


def time_methods(
    num_tasks: int,
    names: list[str],
    steps: int,
    warmup: int,
    batch_size: int,
    memory: bool,
    model: str,
    variants: tuple[str, ...] = VARIANTS,
) -> dict[str, dict]:
    """Per method: median step seconds of EW and of every variant, and the median of per-repeat paired ratios.

    In every repeat each method runs a block of four steps — EW and its three variants, in a rotating order — so
    every ratio compares steps taken within a second of each other; the median over repeats is reported. With
    ``memory``, ``"mib"`` holds the peak tensor MiB of one profiled step per variant.
    """
    inputs, labels = batch(num_tasks, batch_size)
    state = build_model(model, num_tasks).state_dict()
    ew = Runner("ew", "ew", num_tasks, state, model)
    runners = {(name, v): Runner(name, v, num_tasks, state, model) for name in names for v in variants[1:]}
    runners.update({(name, "ew"): ew for name in names})
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    for repeat in range(warmup + steps):
        for index, name in enumerate(names):
            shift = (repeat + index) % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                seconds = runners[(name, variant)].step(inputs, labels)
                if repeat >= warmup:
                    times[(name, variant)].append(seconds)
    result: dict[str, dict] = {}
    for name in names:
        t = {v: times[(name, v)] for v in variants}

        def paired(numerator: str, denominator: str, t: dict[str, list[float]] = t) -> float:
            return statistics.median(a / b for a, b in zip(t[numerator], t[denominator], strict=True))

        result[name] = {
            "ms": {v: 1000 * statistics.median(t[v]) for v in variants},
            "param/ref": paired("parameters", "reference"),
            "rep/ref": paired("representation", "reference"),
            "rep/ew": paired("representation", "ew"),
            "param/ew": paired("parameters", "ew"),
            "ref/ew": paired("reference", "ew"),
        }
        if "batched" in variants:
            result[name]["batched/ref"] = paired("batched", "reference")
        if memory:
            result[name]["mib"] = {v: peak_tensor_mib(runners[(name, v)], inputs, labels) for v in variants}
    return result


def peak_tensor_mib(runner: Runner, inputs: Tensor, labels: Tensor) -> float:
    """Peak live tensor memory (MiB) of one step above its starting level, from the profiler's memory events."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profiler:
        runner.step(inputs, labels)
    events = [e for e in profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
    level = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        level += event.nbytes()
        peak = max(peak, level)
    return peak / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after --warmup)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tasks", default="2,3,5,10", help="comma-separated K values")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--model", default="multilenet", choices=["multilenet", "small_cnn"])
    parser.add_argument("--methods", default=",".join(gradient_methods()))
    parser.add_argument("--no-memory", action="store_true", help="skip the profiled memory step")
    parser.add_argument("--batched", action="store_true", help="add parameters mode with strategy='batched'")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    one_mode = sorted(set(names) - set(gradient_methods()))
    if one_mode:
        parser.error(f"--methods {','.join(one_mode)}: the benchmark compares both modes; these do not support both")
    print(
        f"torch {torch.__version__}, model {args.model}, {args.threads} thread(s), batch {args.batch}, "
        f"{args.steps} timed repeats"
    )
    variants = (*VARIANTS, "batched") if args.batched else VARIANTS
    labels = {"ew": "EW", "reference": "ref", "parameters": "param", "representation": "rep", "batched": "batched"}
    cells = ["K", "method", "EW", "reference", "parameters", "representation (ms)", "ref/EW", "param/ref", "rep/ref"]
    cells += ["rep/EW", *(["batched (ms)", "batched/ref"] if args.batched else [])]
    cells.append("peak MiB " + " / ".join(labels[v] for v in variants))
    print("| " + " | ".join(cells) + " |")
    print("|---" * len(cells) + "|")
    for num_tasks in [int(k) for k in args.tasks.split(",")]:
        results = time_methods(
            num_tasks,
            names,
            args.steps,
            args.warmup,
            args.batch,
            memory=not args.no_memory,
            model=args.model,
            variants=variants,
        )
        for name in names:
            r = results[name]
            ms = " | ".join(f"{r['ms'][v]:.1f}" for v in VARIANTS)
            batched = f" {r['ms']['batched']:.1f} | {r['batched/ref']:.2f} |" if args.batched else ""
            mib = " / ".join(f"{r['mib'][v]:.1f}" for v in variants) if "mib" in r else "-"
            print(
                f"| {num_tasks} | {name} | {ms} | {r['ref/ew']:.2f} | {r['param/ref']:.2f} | {r['rep/ref']:.2f} | "
                f"{r['rep/ew']:.2f} |{batched} {mib} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
