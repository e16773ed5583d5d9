"""Data-parallel training step on 1 vs N processes for the same global batch, and the bytes each step all-reduces.

Every method steps with ``sync_across_ranks=True`` (the global batch's update on every rank) on the embedded
``multilenet`` problem: one process trains on the global batch; N gloo processes (CPU; file rendezvous, no network)
each train on 1/N of it. Printed per method and mode: the median step time of each (forward, ``method.step``, Adam
step), their ratio (N processes / 1 process; below 1 is a speed-up), and the bytes this rank handed to all-reduce per
step, next to the two reference volumes: K×K numbers plus one gradient (the Gram scheme) and K gradients of the shared
parameters (O(K·P)), both with the heads' gradients, which every data-parallel step averages. Ratios are measured
side by side in one run; absolute times depend on the machine.

Example:
    python benchmarks/ddp_scaling.py --threads 1 --steps 10 --processes 2
    python benchmarks/ddp_scaling.py --device cuda --processes 2     # two GPUs, NCCL
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from taskbalance import data as datasets
from taskbalance import distributed, methods, models

CASES: list[tuple[str, dict[str, object]]] = [
    ("ew", {}),
    ("uwso", {"temperature": 2.0}),
    ("famo", {}),
    ("mgda", {"mode": "parameters"}),
    ("mgda", {"mode": "representation"}),
    ("nashmtl", {"mode": "parameters"}),
    ("nashmtl", {"mode": "representation"}),
    ("pcgrad", {"mode": "parameters"}),
    ("pcgrad", {"mode": "representation"}),
    ("cagrad", {"mode": "representation"}),
]


def _measure(
    cases: list[tuple[str, dict[str, object]]], batch: int, steps: int, warmup: int, shard: slice, device: str
) -> list:
    data = datasets.create("multifashion", num_train=batch, num_val=8, num_test=8)
    inputs, targets = next(iter(DataLoader(data.train, batch_size=batch)))
    inputs, targets = inputs[shard].to(device), {name: t[shard].to(device) for name, t in targets.items()}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for name, options in cases:
        torch.manual_seed(0)
        model = models.create("multilenet", heads={n: task.head for n, task in data.tasks.items()}).to(device)
        method = methods.create(name, data.tasks, **options, sync_across_ranks=True).to(device)
        optimizer = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=1e-3)
        times, volumes = [], []
        for step in range(warmup + steps):
            distributed.traffic.reset()
            distributed.barrier()
            sync()
            start = time.perf_counter()
            optimizer.zero_grad()
            representation = model.shared(inputs)
            predictions = model.decode(representation)
            losses = [task.loss(predictions[n], targets[n]) for n, task in data.tasks.items()]
            method.step(losses, shared_parameters=model.shared_parameters(), representation=representation)
            optimizer.step()
            if method.needs_losses_after_step:
                with torch.no_grad():
                    after = model(inputs)
                method.after_step(torch.stack([t.loss(after[n], targets[n]) for n, t in data.tasks.items()]))
            sync()
            if step >= warmup:
                times.append(time.perf_counter() - start)
                volumes.append(distributed.traffic.bytes)
        shared = sum(p.numel() * p.element_size() for p in model.shared_parameters())
        heads = sum(p.numel() * p.element_size() for p in model.heads.parameters())
        rows.append((statistics.median(times) * 1000, statistics.median(volumes), shared, heads, len(data.tasks)))
    return rows


def _worker(rank: int, world: int, init_file: str, out: str, args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    with distributed.leaving_together():
        share = args.batch // world
        rows = _measure(CASES if args.methods is None else _chosen(args.methods), args.batch, args.steps, args.warmup,
                        slice(rank * share, (rank + 1) * share), f"cuda:{rank}" if cuda else "cpu")
        if rank == 0:
            torch.save(rows, out)


def _chosen(names: str) -> list[tuple[str, dict[str, object]]]:
    wanted = set(names.split(","))
    return [case for case in CASES if case[0] in wanted]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--processes", type=int, default=2, help="N, the processes of the data-parallel run")
    parser.add_argument("--batch", type=int, default=256, help="the global batch")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: gloo processes; cuda: one GPU per process, NCCL")
    args = parser.parse_args(argv)
    if args.device == "cuda" and torch.cuda.device_count() < args.processes:
        parser.error(f"--device cuda needs {args.processes} GPUs, {torch.cuda.device_count()} visible")
    if args.batch % args.processes:
        parser.error(f"--batch {args.batch} must be a multiple of --processes {args.processes}")
    cases = CASES if args.methods is None else _chosen(args.methods)

    torch.set_num_threads(args.threads)
    single = _measure(cases, args.batch, args.steps, args.warmup, slice(0, args.batch),
                      "cuda:0" if args.device == "cuda" else "cpu")
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "rows.pt")
        mp.spawn(_worker, args=(args.processes, str(Path(folder) / "init"), out, args), nprocs=args.processes)
        parallel = torch.load(out)

    where = "GPU" if args.device == "cuda" else f"{args.threads} thread(s)"
    print(f"global batch {args.batch}, {args.processes} processes × {where}, {args.steps} steps")
    print("Reference volumes (float32): Gram scheme = K losses + K² Gram + one shared gradient + the heads' gradients;")
    print("per-task scheme = K losses + K shared gradients + the heads' gradients.")
    print("| method | mode | 1 process (ms) | N processes (ms) | N / 1 | bytes/step | Gram scheme | per-task |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (name, options), one, many in zip(cases, single, parallel, strict=True):
        _, volume, shared, heads, k = many
        gram_scheme = 4 * (k + k * k) + shared + heads
        per_task = 4 * k + k * shared + heads
        print(f"| {name} | {options.get('mode', '—')} | {one[0]:.1f} | {many[0]:.1f} | {many[0] / one[0]:.2f} | "
              f"{volume:,.0f} | {gram_scheme:,} | {per_task:,} |")

if __name__ == "__main__":
    main()
