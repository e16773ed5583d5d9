"""The training loop: one plain function from a :class:`RunConfig` to a :class:`RunResult`.

Per epoch: a seeded pass over the training split (forward, task losses, the method's backward, Adam step), the
method's epoch hook, the step LR schedule, then evaluation on the validation and the test split, then an atomic
checkpoint. Selection of the reported epoch (by validation Δm) is the protocol's job; test metrics are recorded every
epoch so that a run does not depend on the baselines and all runs of a sweep can run at once.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from taskbalance.data.base import MultiTaskData
from taskbalance.models.base import MultiTaskModel
from taskbalance.tasks.base import Task
from taskbalance.training.build import build
from taskbalance.training.checkpoint import load_checkpoint, save_atomically
from taskbalance.training.config import ConfigError, RunConfig
from taskbalance.training.result import EpochRecord, RunResult

EpochCallback = Callable[[EpochRecord], None]


def _epoch_seed(seed: int, epoch: int) -> int:
    # One seed per (run seed, epoch): data order and augmentation of an epoch do not depend on whether the run
    # was resumed before it.
    return (seed * 1_000_003 + epoch) % (2**63 - 1)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@torch.no_grad()
def evaluate(
    model: MultiTaskModel, tasks: Mapping[str, Task], dataset: Dataset, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Every task's metrics over a whole split, keyed ``"task/metric"``."""
    was_training = model.training
    model.eval()
    meters = {name: task.meter() for name, task in tasks.items()}
    for inputs, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        predictions = model(inputs.to(device))
        for name, meter in meters.items():
            meter.update(predictions[name], targets[name].to(device))
    model.train(was_training)
    return {
        f"{name}/{metric}": float(value) for name, meter in meters.items() for metric, value in meter.compute().items()
    }


def _step_losses(
    model: MultiTaskModel, tasks: Mapping[str, Task], inputs: Tensor, targets: Mapping[str, Tensor]
) -> tuple[Tensor | tuple[Tensor, ...], list[Tensor]]:
    representation = model.shared(inputs)
    predictions = model.decode(representation)
    return representation, [task.loss(predictions[name], targets[name]) for name, task in tasks.items()]


def train(
    config: RunConfig,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
    data: MultiTaskData | None = None,
    device: str | torch.device = "cpu",
) -> RunResult:
    """Train one run and return its per-epoch validation and test metrics.

    Args:
        config: the run.
        checkpoint_dir: where ``{run_id}.pt`` is written atomically after every epoch; a run started again with the
            same folder resumes after its last finished epoch and gives the same result as an uninterrupted run.
            The checkpoint is removed when the run finishes.
        on_epoch: called with each epoch's record (e.g. progress reporting).
        data: an already built dataset (otherwise built from ``config.dataset``).
        device: where to train.

    Example:
        >>> from taskbalance.training import RunConfig, train
        >>> tiny = {"num_train": 64, "num_val": 16, "num_test": 16}
        >>> result = train(RunConfig(dataset_options=tiny, epochs=1, max_steps_per_epoch=2, method="uwso",
        ...                          method_options={"temperature": 1.0}))
        >>> sorted(result.epochs[-1].val)
        ['depth/mae', 'depth/rmse', 'left/accuracy', 'right/accuracy']
    """
    device = torch.device(device)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(config.seed)
    data, model, method = build(config, data)
    tasks = data.tasks
    task_names = list(tasks)
    model.to(device)
    method.to(device)
    optimizer = torch.optim.Adam(
        [
            {"params": list(model.parameters()), "weight_decay": config.weight_decay},
            # No weight decay on a method's own parameters (UW's log-variances): it would bias the weighting.
            {"params": list(method.parameters()), "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)

    records: list[EpochRecord] = []
    logged_steps: list[int] = []
    step_weights: list[list[float]] = []
    step_losses: list[list[float]] = []
    step_times: list[float] = []
    previous_wall = previous_cpu = 0.0
    global_step = 0
    checkpoint_path = checkpoint_dir / f"{config.run_id()}.pt" if checkpoint_dir is not None else None
    state = load_checkpoint(checkpoint_path) if checkpoint_path is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        records = [EpochRecord(**record) for record in state["records"]]
        logged_steps, step_weights, step_losses = state["steps"], state["step_weights"], state["step_losses"]
        step_times = state["step_times"]
        global_step = state["global_step"]
        previous_wall, previous_cpu = state["wall_seconds"], state["cpu_seconds"]
    wall_start -= previous_wall
    cpu_start -= previous_cpu

    for epoch in range(len(records) + 1, config.epochs + 1):
        epoch_start = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        order = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
        # A last batch of one sample is dropped: BatchNorm cannot normalise it in training mode (e.g. DeepLabV3+'s
        # image pooling); any other remainder is trained on.
        lone_last = len(data.train) % config.batch_size == 1 and len(data.train) > 1
        loader = DataLoader(
            data.train, batch_size=config.batch_size, shuffle=True, generator=order, drop_last=lone_last
        )
        model.train()
        loss_sum = torch.zeros(len(tasks), dtype=torch.float64, device=device)
        weight_sum = torch.zeros(len(tasks), dtype=torch.float64, device=device)
        logged: list[tuple[int, Tensor, Tensor]] = []
        steps_in_epoch = 0
        lr = optimizer.param_groups[0]["lr"]
        for inputs, targets in loader:
            if config.max_steps_per_epoch and steps_in_epoch >= config.max_steps_per_epoch:
                break
            inputs = inputs.to(device)
            targets = {name: targets[name].to(device) for name in task_names}
            step_start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            representation, task_losses = _step_losses(model, tasks, inputs, targets)
            losses = torch.stack(task_losses)
            # The list, not the stack: a gradient method's per-task gradient then never flows back through the
            # other heads.
            method.step(task_losses, shared_parameters=model.shared_parameters(), representation=representation)
            optimizer.step()
            if method.needs_losses_after_step:
                # FAMO measures each task's loss decrease on the same batch: one more forward, no gradient, in
                # training mode like the step itself.
                with torch.no_grad():
                    _, after = _step_losses(model, tasks, inputs, targets)
                method.after_step(torch.stack(after))
            step_times.append(time.perf_counter() - step_start)
            detached = losses.detach()
            weights = method.last_weights.detach()
            loss_sum += detached
            weight_sum += weights
            if global_step % config.log_every == 0:
                logged.append((global_step, weights.clone(), detached.clone()))
            steps_in_epoch += 1
            global_step += 1
        if steps_in_epoch == 0:
            raise ConfigError(f"epoch {epoch} has no training batch: the training split of {config.dataset!r} is empty")
        # One host transfer per epoch, not per step.
        for step, weights, losses in logged:
            logged_steps.append(step)
            step_weights.append(weights.tolist())
            step_losses.append(losses.tolist())
        mean_losses = (loss_sum / steps_in_epoch).to(torch.float32)
        method.end_epoch(mean_losses)
        scheduler.step()
        record = EpochRecord(
            epoch=epoch,
            train_losses=dict(zip(task_names, mean_losses.tolist(), strict=True)),
            val=evaluate(model, tasks, data.val, config.eval_batch_size, device),
            test=evaluate(model, tasks, data.test, config.eval_batch_size, device),
            mean_weights=dict(zip(task_names, (weight_sum / steps_in_epoch).tolist(), strict=True)),
            lr=lr,
            seconds=time.perf_counter() - epoch_start,
        )
        records.append(record)
        if checkpoint_path is not None and epoch < config.epochs:
            save_atomically(
                {
                    "run_id": config.run_id(),
                    "model": model.state_dict(),
                    "method": method.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "records": [asdict(r) for r in records],
                    "steps": logged_steps,
                    "step_weights": step_weights,
                    "step_losses": step_losses,
                    "step_times": step_times,
                    "global_step": global_step,
                    "wall_seconds": time.perf_counter() - wall_start,
                    "cpu_seconds": time.process_time() - cpu_start,
                },
                checkpoint_path,
            )
        if on_epoch is not None:
            on_epoch(record)

    higher_is_better = {
        f"{name}/{spec.name}": spec.higher_is_better for name, task in tasks.items() for spec in task.metrics
    }
    result = RunResult(
        config=config,
        tasks=task_names,
        higher_is_better=higher_is_better,
        epochs=records,
        steps=logged_steps,
        step_weights=step_weights,
        step_losses=step_losses,
        ms_per_step=1000 * statistics.median(step_times) if step_times else 0.0,
        peak_memory_mb=_peak_memory_mb(device),
        wall_seconds=time.perf_counter() - wall_start,
        cpu_seconds=time.process_time() - cpu_start,
    )
    if checkpoint_path is not None:
        checkpoint_path.unlink(missing_ok=True)
    return result

