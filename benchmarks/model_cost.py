"""Time per sample of the paper presets' models on this machine: a forward pass (evaluation) and a training step.

One process; for each preset (default: the five paper setups) the preset's model is built with the preset's heads
and input size, from random weights (a ``pretrained`` file is never read: the time does not depend on the weights).
Two things are timed on random inputs of ``--batch`` samples, interleaved call by call so that drift of the machine
hits both alike:

- **forward**: ``model.eval()`` under ``torch.no_grad()``, as the evaluation after every epoch;
- **step**: ``model.train()``, the forward pass, a loss per head (the mean of its output: the heads' real losses
  are reductions too and cost little next to the network), one backward and an Adam step — an EW training step.

Printed per preset: the median milliseconds per sample of each, their ratio (a backward pass costs about twice a
forward pass, so about 3), the forward FLOPs per sample (:func:`taskbalance.models.flops.forward_flops`) and the rate
the forward pass reached, and the device-hours one EW run of the preset would take at these per-sample times
(``epochs · (train samples · step + evaluated samples · forward)``; with ``--batch`` smaller than the preset's the
per-sample time differs somewhat, so read it as a magnitude; ``--preset-batch`` times at each preset's own batch).

On a GPU (``--device cuda``) each call is timed between ``torch.cuda.synchronize()`` calls, in ``--precision``
(``bf16``: the forward pass under ``torch.autocast``, as a run with ``precision = "bf16"``).

Example:
    python benchmarks/model_cost.py --threads 1 --batch 2 --steps 3
    python benchmarks/model_cost.py --device cuda --preset-batch --precision bf16 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch

from taskbalance import models
from taskbalance.models.base import MultiTaskModel
from taskbalance.models.flops import forward_flops
from taskbalance.protocol.presets import PRESETS, Preset
from taskbalance.training.devices import autocast

PAPER_PRESETS = ("nyuv2-segnet", "nyuv2-deeplabv3plus", "cityscapes-segnet", "cityscapes-deeplabv3plus",
                 "celeba-resnet18")


def model_options(preset: Preset) -> dict[str, object]:
    return {key: value for key, value in preset.run.model_options.items() if key != "pretrained"}


def build(preset: Preset) -> MultiTaskModel:
    torch.manual_seed(0)
    return models.create(preset.run.model, heads=dict(preset.heads), in_channels=preset.input_shape[0],
                         **model_options(preset))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_seconds(model: MultiTaskModel, inputs: torch.Tensor, precision: str) -> float:
    model.eval()
    synchronize(inputs.device)
    start = time.perf_counter()
    with torch.no_grad(), autocast(inputs.device, precision):
        model(inputs)
    synchronize(inputs.device)
    return time.perf_counter() - start


def step_seconds(
    model: MultiTaskModel, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, precision: str
) -> float:
    model.train()
    synchronize(inputs.device)
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    with autocast(inputs.device, precision):
        outputs = model(inputs)
    torch.stack([output.float().mean() for output in outputs.values()]).sum().backward()
    optimizer.step()
    synchronize(inputs.device)
    return time.perf_counter() - start


def measure(
    preset: Preset, batch: int, steps: int, warmup: int, device: torch.device, precision: str = "fp32"
) -> tuple[float, float]:
    """Median seconds per sample of the forward pass and of the training step."""
    model = build(preset).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = torch.rand(batch, *preset.input_shape, generator=torch.Generator().manual_seed(1)).to(device)
    forwards: list[float] = []
    trainings: list[float] = []
    for index in range(warmup + steps):
        if index % 2:  # the other order every second call, so neither always runs on a warmer cache
            trained = step_seconds(model, optimizer, inputs, precision)
            forward = forward_seconds(model, inputs, precision)
        else:
            forward = forward_seconds(model, inputs, precision)
            trained = step_seconds(model, optimizer, inputs, precision)
        if index >= warmup:
            forwards.append(forward)
            trainings.append(trained)
    return statistics.median(forwards) / batch, statistics.median(trainings) / batch


def readable(value: float) -> str:
    """One decimal from 1 up (thousands separated from 1,000), two significant digits below 1."""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2, help="samples per timed call")
    parser.add_argument("--preset-batch", action="store_true", help="time each preset at its own batch size")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--steps", type=int, default=3, help="timed calls of each kind per preset")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls of each kind first")
    parser.add_argument("--presets", default=",".join(PAPER_PRESETS), help="comma-separated preset names")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.presets.split(",") if name.strip()]
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        parser.error(f"--presets: unknown preset(s) {', '.join(unknown)}; known: {', '.join(PRESETS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is visible")
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    batch_text = "each preset's batch" if args.preset_batch else f"batch {args.batch}"
    print(f"torch {torch.__version__}, {where}, {args.precision}, {batch_text}, {args.steps} timed calls of each kind "
          f"after {args.warmup} warm-up call(s); median ms per sample")
    print()
    unit = "GPU-h" if device.type == "cuda" else "CPU-h"
    print("| preset | model | input | heads | batch | forward ms | step ms | step / forward | forward GFLOP | "
          f"forward GFLOP/s | {unit} per EW run |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        preset = PRESETS[name]
        batch = preset.run.batch_size if args.preset_batch else args.batch
        forward, step = measure(preset, batch, args.steps, args.warmup, device, args.precision)
        flops = forward_flops(preset.run.model, dict(preset.heads), preset.input_shape, **model_options(preset))
        run_hours = (preset.run.epochs * ((preset.num_train or 0) * step + (preset.num_evaluated or 0) * forward)
                     / 3600)
        shape = "×".join(str(size) for size in preset.input_shape)
        print(f"| {name} | {preset.run.model} | {shape} | {len(preset.heads)} | {batch} | {readable(forward * 1000)} | "
              f"{readable(step * 1000)} | {step / forward:.2f} | {flops.total / 1e9:.3g} | "
              f"{readable(flops.total / forward / 1e9)} | {readable(run_hours)} |")


if __name__ == "__main__":
    main()
