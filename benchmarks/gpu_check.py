"""What a GPU buys: step times side by side in one process, library overhead, and the default benchmark's wall time.

Needs a CUDA GPU and finishes in a few minutes on one modern GPU. Measured, interleaved step by step so that drift
hits every variant alike (median of the steps after warm-up, ``torch.cuda.synchronize`` around each step):

1. ms per training step of EW, UW-SO and a gradient method (Nash-MTL: not scale-invariant, Gram-based) in both modes
   and both per-task gradient strategies (``loop``, ``batched``), at fp32 and bf16, for ``multilenet`` (embedded
   MultiFashion shapes, batch 256) and SegNet at NYUv2 size (288×384, batch 8, random data);
2. the same EW / UW-SO step written as a plain PyTorch loop (no taskbalance): the library's overhead, target
   ≤ 1.05× for loss weightings;
3. the default ``taskbalance bench`` on the GPU with ``--runs-per-device 4`` against its committed CPU wall time
   (9 min 52 s on the 2-core CI machine): target ≥ 10× faster.

Other target: SegNet bf16 ≥ 1.5× faster than fp32. Each step's achieved TFLOP/s is its FLOPs (counted on the meta
device by ``taskbalance.models.flops`` and the method's ``step_passes``: matrix products and convolutions only) over
its time: what the GPU sustains on these models, the rate to read ``bench --dry-run``'s FLOPs at. Prints a Markdown
table and writes it to ``--out``.

``--dry-run`` runs parts 1 and 2 on the CPU with tiny sizes (a check that the script works, not a measurement) and
prints the bench command of part 3 without running it.

Example:
    python benchmarks/gpu_check.py --out docs/results/gpu_check.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from taskbalance import methods, models
from taskbalance.method import StepPasses
from taskbalance.models.flops import ForwardFlops, forward_flops
from taskbalance.tasks import Classification, Depth, Regression, SemanticSegmentation, SurfaceNormals
from taskbalance.tasks.base import Task
from taskbalance.training.devices import autocast

COMMITTED_CPU_BENCH_SECONDS = 9 * 60 + 52  # README: the default bench on the 2-core CI machine
TARGETS = {"overhead": 1.05, "bench_speedup": 10.0, "segnet_bf16_speedup": 1.5}


@dataclass
class Problem:
    name: str
    model: str
    tasks: dict[str, Task]
    inputs: Tensor
    targets: dict[str, Tensor]


def problems(device: torch.device, dry_run: bool) -> list[Problem]:
    g = torch.Generator().manual_seed(0)
    batch, size = (2, (32, 32)) if dry_run else (8, (288, 384))
    fashion_batch = 16 if dry_run else 256
    fashion = {
        "left": Classification("left", 10),
        "right": Classification("right", 10),
        "depth": Regression("depth", out_channels=1, dense=True, size=(9, 9), loss="l1"),
    }
    nyu = {"segmentation": SemanticSegmentation("segmentation", 13), "depth": Depth("depth"),
           "normal": SurfaceNormals("normal")}
    h, w = size
    normals = torch.nn.functional.normalize(torch.randn(batch, 3, h, w, generator=g), dim=1)
    return [
        Problem("multilenet", "multilenet", fashion, torch.rand(fashion_batch, 1, 36, 36, generator=g), {
            "left": torch.randint(0, 10, (fashion_batch,), generator=g),
            "right": torch.randint(0, 10, (fashion_batch,), generator=g),
            "depth": torch.rand(fashion_batch, 1, 9, 9, generator=g),
        }),
        Problem("segnet", "segnet", nyu, torch.randn(batch, 3, h, w, generator=g), {
            "segmentation": torch.randint(-1, 13, (batch, h, w), generator=g),
            "depth": torch.rand(batch, 1, h, w, generator=g) + 0.1,
            "normal": normals,
        }),
    ]


def _to(problem: Problem, device: torch.device) -> Problem:
    return Problem(problem.name, problem.model, problem.tasks, problem.inputs.to(device),
                   {k: v.to(device) for k, v in problem.targets.items()})


def library_step(problem: Problem, method_name: str, options: dict, precision: str,
                 device: torch.device) -> Callable[[], None]:
    torch.manual_seed(0)
    model = models.create(problem.model, heads={n: t.head for n, t in problem.tasks.items()},
                          in_channels=problem.inputs.shape[1]).to(device)
    method = methods.create(method_name, problem.tasks, **options).to(device)
    optimizer = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            rep = model.shared(problem.inputs)
            predictions = model.decode(rep)
        losses = [t.loss(predictions[n].float(), problem.targets[n]) for n, t in problem.tasks.items()]
        method.step(losses, shared_parameters=model.shared_parameters(), representation=rep)
        optimizer.step()

    return step


def plain_step(problem: Problem, weighting: str, precision: str, device: torch.device) -> Callable[[], None]:
    """The same step as a user would write it without taskbalance (EW: the sum; UW-SO: softmax of 1/L by hand)."""
    torch.manual_seed(0)
    model = models.create(problem.model, heads={n: t.head for n, t in problem.tasks.items()},
                          in_channels=problem.inputs.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            predictions = model(problem.inputs)
        losses = torch.stack([t.loss(predictions[n].float(), problem.targets[n]) for n, t in problem.tasks.items()])
        weights = torch.softmax(1.0 / losses.detach(), dim=0) if weighting == "uwso" else torch.ones_like(losses)
        (weights * losses).sum().backward()
        optimizer.step()

    return step


def time_interleaved(steps: dict[str, Callable[[], None]], repeats: int, warmup: int,
                     device: torch.device) -> dict[str, float]:
    """Median ms of each step function, taking them in a rotating order every repeat."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(warmup + repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            steps[name]()
            sync()
            if repeat >= warmup:
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in times.items()}


def problem_forward_flops(problem: Problem) -> ForwardFlops:
    """One sample's forward FLOPs of the problem's model, split into encoder and heads (a meta-device trace)."""
    heads = {n: t.head for n, t in problem.tasks.items()}
    return forward_flops(problem.model, heads, tuple(problem.inputs.shape[1:]))


def step_flops(problem: Problem, method_name: str | None, options: dict, forward: ForwardFlops | None = None) -> float:
    """FLOPs of one training step on the problem's batch; ``None``: a plain loop's one forward and one backward.

    ``forward`` is the problem's :func:`problem_forward_flops`, traced here when not given.
    """
    heads = {n: t.head for n, t in problem.tasks.items()}
    forward = forward if forward is not None else problem_forward_flops(problem)
    passes = StepPasses() if method_name is None else methods.method_class(method_name).step_passes(len(heads), options)
    return passes.flops(shared=forward.shared, heads=forward.heads) * problem.inputs.shape[0]


def measure_steps(
    device: torch.device, repeats: int, warmup: int, dry_run: bool
) -> list[tuple[str, str, str, float, float]]:
    """Rows of (model, precision, step, ms per step, FLOPs per step)."""
    rows = []
    variants = {
        "ew": ("ew", {}),
        "uwso": ("uwso", {"temperature": 2.0}),
        "nashmtl parameters loop": ("nashmtl", {"mode": "parameters", "strategy": "loop"}),
        "nashmtl parameters batched": ("nashmtl", {"mode": "parameters", "strategy": "batched"}),
        "nashmtl representation loop": ("nashmtl", {"mode": "representation", "strategy": "loop"}),
        "nashmtl representation batched": ("nashmtl", {"mode": "representation", "strategy": "batched"}),
    }
    for problem in problems(device, dry_run):
        problem = _to(problem, device)
        # Traced and counted once per problem: the FLOPs of a step depend on neither its precision nor its method's
        # options beyond the passes they run.
        forward = problem_forward_flops(problem)
        flops = {label: step_flops(problem, *variants.get(label, (None, {})), forward=forward)
                 for label in [*variants, "plain ew", "plain uwso"]}
        for precision in ("fp32", "bf16"):
            steps = {label: library_step(problem, name, opts, precision, device) for label, (name, opts) in
                     variants.items()}
            steps["plain ew"] = plain_step(problem, "ew", precision, device)
            steps["plain uwso"] = plain_step(problem, "uwso", precision, device)
            for label, ms in time_interleaved(steps, repeats, warmup, device).items():
                rows.append((problem.name, precision, label, ms, flops[label]))
    return rows


def bench_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "taskbalance", "bench", "--device", "cuda", "--runs-per-device", "4", "--out",
            str(out)]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU; no bench run")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    parser.add_argument("--skip-bench", action="store_true", help="only the step measurements")
    args = parser.parse_args(argv)
    if args.dry_run:
        device = torch.device("cpu")
        args.repeats, args.warmup = 1, 0
    elif not torch.cuda.is_available():
        parser.error("needs a CUDA GPU (use --dry-run to check the script on the CPU)")
    else:
        device = torch.device("cuda")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run: not a measurement)"
    lines = [f"# GPU check on {name}", "", f"torch {torch.__version__}, CUDA {torch.version.cuda}", "",
             "| model | precision | step | ms/step | TFLOP/s |", "|---|---|---|---:|---:|"]
    rows = measure_steps(device, args.repeats, args.warmup, args.dry_run)
    lines += [f"| {model} | {precision} | {label} | {ms:.2f} | {flops / ms / 1e9:.3g} |"
              for model, precision, label, ms, flops in rows]
    by = {(m, p, label): ms for m, p, label, ms, _ in rows}
    lines += ["", "| check | measured | target |", "|---|---:|---:|"]
    for model in ("multilenet", "segnet"):
        for weighting in ("ew", "uwso"):
            ratio = by[(model, "fp32", weighting)] / by[(model, "fp32", f"plain {weighting}")]
            target = TARGETS["overhead"]
            lines.append(f"| {model} {weighting}: library / plain loop (fp32) | {ratio:.3f}× | ≤ {target}× |")
    speedup = by[("segnet", "fp32", "ew")] / by[("segnet", "bf16", "ew")]
    lines.append(f"| SegNet EW: fp32 / bf16 step | {speedup:.2f}× | ≥ {TARGETS['segnet_bf16_speedup']}× |")
    for mode in ("parameters", "representation"):
        for model in ("multilenet", "segnet"):
            loop, batched = (by[(model, "fp32", f"nashmtl {mode} {s}")] for s in ("loop", "batched"))
            ratio = batched / loop
            lines.append(f"| {model} Nash-MTL {mode}: batched / loop (fp32) | {ratio:.2f}× | < 1 favours batched |")

    with tempfile.TemporaryDirectory() as folder:
        command = bench_command(Path(folder) / "bench")
        if args.dry_run or args.skip_bench:
            shown = " ".join(command[1:])
            lines.append(f"| default bench on the GPU | not run: `{shown}` | ≥ {TARGETS['bench_speedup']}× |")
        else:
            start = time.perf_counter()
            subprocess.run(command, check=True)
            seconds = time.perf_counter() - start
            lines.append(f"| default bench: CPU {COMMITTED_CPU_BENCH_SECONDS} s / GPU {seconds:.0f} s | "
                         f"{COMMITTED_CPU_BENCH_SECONDS / seconds:.1f}× | ≥ {TARGETS['bench_speedup']}× |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return report


if __name__ == "__main__":
    main()
