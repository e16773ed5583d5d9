"""The training loop: one plain function from a :class:`RunConfig` to a :class:`RunResult`.

Per epoch: a seeded pass over the training split (forward, task losses, ``method.step``, optimizer step), the method's
epoch hook, the step LR schedule, then evaluation on the validation and the test split, then an atomic checkpoint.
Selection of the reported epoch (by validation Δm) is the protocol's job; test metrics are recorded every epoch so
that a run does not depend on the baselines and all runs of a sweep can run at once.

Inside a ``torch.distributed`` job (``torchrun -m taskbalance train``) every rank trains on its share of each
global batch, the method computes the global batch's update (``sync_across_ranks``), rank 0 evaluates and writes
checkpoints, and every rank resumes from them; see docs/distributed.md.

Every method is driven through the same contract (:class:`taskbalance.method.Method`): the loop has no notion of
loss weightings or gradient methods. A run whose losses, weights or metrics become NaN or infinite stops with
:class:`TrainingDivergedError`, which names the epoch, the step, the task and the value.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from taskbalance import distributed
from taskbalance.data.base import MultiTaskData
from taskbalance.method import Method, call_after_step
from taskbalance.models.base import MultiTaskModel
from taskbalance.tasks.base import Task
from taskbalance.training.build import build
from taskbalance.training.checkpoint import load_checkpoint, remove_stale_temporaries, save_atomically
from taskbalance.training.config import ConfigError, RunConfig, learns_parameters
from taskbalance.training.device_data import DeviceSplit
from taskbalance.training.devices import autocast, determinism, device_record, resolve_device
from taskbalance.training.result import EpochRecord, RunResult
from taskbalance.training.state import TrainingState

EpochCallback = Callable[[EpochRecord], None]


class TrainingDivergedError(ValueError):
    """A training loss, a task weight or an evaluation metric became NaN or infinite; the run has failed."""


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
    model: MultiTaskModel,
    tasks: Mapping[str, Task],
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
) -> dict[str, float]:
    """Every task's metrics over a whole split, keyed ``"task/metric"`` (forward in ``precision``, metrics in
    float32)."""
    was_training = model.training
    model.eval()
    meters = {name: task.meter() for name, task in tasks.items()}
    batches = dataset.in_order(batch_size) if isinstance(dataset, DeviceSplit) else DataLoader(
        dataset, batch_size=batch_size, shuffle=False, pin_memory=device.type == "cuda"
    )
    for inputs, targets in batches:
        with autocast(device, precision):
            predictions = model(inputs.to(device, non_blocking=True))
        for name, meter in meters.items():
            meter.update(predictions[name].float(), targets[name].to(device, non_blocking=True))
    model.train(was_training)
    return {
        f"{name}/{metric}": float(value) for name, meter in meters.items() for metric, value in meter.compute().items()
    }


def _step_losses(
    model: MultiTaskModel, tasks: Mapping[str, Task], inputs: Tensor, targets: Mapping[str, Tensor], precision: str
) -> tuple[Tensor | tuple[Tensor, ...], list[Tensor]]:
    with autocast(inputs.device, precision):
        representation = model.shared(inputs)
        predictions = model.decode(representation)
    # Losses in float32 whatever the forward's precision, so no weighting's 1/L, log or exp runs in half precision.
    return representation, [task.loss(predictions[name].float(), targets[name]) for name, task in tasks.items()]


def _raise_if_not_finite(values: Tensor, names: list[str], what: str, where: str) -> None:
    # One host sync; the message is only built on failure.
    if not bool(torch.isfinite(values).all()):
        task, value = next((n, v) for n, v in zip(names, values.tolist(), strict=True) if not math.isfinite(v))
        raise TrainingDivergedError(f"training diverged {where}: {what} of task {task!r} is {value}")


def train_epoch(
    state: TrainingState,
    data: MultiTaskData,
    config: RunConfig,
    epoch: int,
    device: torch.device,
    resident: Mapping[str, DeviceSplit] | None = None,
) -> tuple[Tensor, Tensor]:
    """One seeded pass over the training split; returns the epoch-mean task losses and task weights."""
    model, method, tasks = state.model, state.method, data.tasks
    task_names = list(tasks)
    resident = resident or {}
    torch.manual_seed(_epoch_seed(config.seed, epoch))
    loader = _training_batches(resident.get("train", data.train), config, _epoch_seed(config.seed, epoch), device)
    model.train()
    loss_sum = torch.zeros(len(tasks), dtype=torch.float64, device=device)
    weight_sum = torch.zeros(len(tasks), dtype=torch.float64, device=device)
    logged: list[tuple[int, Tensor, Tensor]] = []
    steps_in_epoch = 0
    for inputs, targets in loader:
        if config.max_steps_per_epoch and steps_in_epoch >= config.max_steps_per_epoch:
            break
        inputs = inputs.to(device, non_blocking=True)
        targets = {name: targets[name].to(device, non_blocking=True) for name in task_names}
        if steps_in_epoch == 0:  # a wrongly encoded dataset fails before its first step, naming the task
            for name, task in tasks.items():
                task.check_targets(targets[name])
        step_start = time.perf_counter()
        state.optimizer.zero_grad(set_to_none=True)
        representation, task_losses = _step_losses(model, tasks, inputs, targets, config.precision)
        # The global batch's losses (the ranks' mean; this process's own outside a distributed job), so that logs,
        # the epoch means and the divergence check agree on every rank.
        detached = distributed.all_reduce_mean(torch.stack(task_losses).detach())
        _raise_if_not_finite(detached, task_names, "the loss", f"in epoch {epoch}, step {state.global_step}")
        scaler = state.scaler
        # fp16: the scaler's current scale as a tensor on the device (no host sync); 1.0 otherwise.
        loss_scale = scaler.scale(torch.ones((), device=inputs.device)) if scaler.is_enabled() else 1.0
        method.step(
            task_losses,  # the list, not the stack: a task's gradient then never flows back through the other heads
            shared_parameters=model.shared_parameters(),
            representation=representation,
            loss_scale=loss_scale,
        )
        scaler.step(state.optimizer)  # the plain optimizer step unless fp16 (then unscaled; skipped on overflow)
        scaler.update()
        if method.needs_losses_after_step:
            # FAMO measures each task's loss decrease on the same batch: one more forward, no gradient, in training
            # mode like the step itself.
            with torch.no_grad():
                _, after = _step_losses(model, tasks, inputs, targets, config.precision)
            call_after_step(method, torch.stack(after), _step_applied(scaler, loss_scale))
        state.step_times.append(time.perf_counter() - step_start)
        weights = method.last_weights.detach()
        loss_sum += detached
        weight_sum += weights
        if state.global_step % config.log_every == 0:
            logged.append((state.global_step, weights.clone(), detached.clone()))
        steps_in_epoch += 1
        state.global_step += 1
    if steps_in_epoch == 0:
        raise ConfigError(f"epoch {epoch} has no training batch: the training split of {config.dataset!r} is empty")
    _raise_if_not_finite(weight_sum, task_names, "the weight", f"in epoch {epoch}")
    # One host transfer per epoch, not per step.
    for step, weights, losses in logged:
        state.steps.append(step)
        state.step_weights.append(weights.tolist())
        state.step_losses.append(losses.tolist())
    return (loss_sum / steps_in_epoch).to(torch.float32), weight_sum / steps_in_epoch


def _step_applied(scaler: torch.amp.GradScaler, scale_before: float | Tensor) -> bool | Tensor:
    """Whether the optimizer step just taken was applied: always without fp16; under fp16 a 0-dim bool tensor, false
    when the scaler skipped the step for an overflow (``update`` then lowered the scale; it only ever lowers it
    then). A tensor comparison, so no host sync."""
    if not scaler.is_enabled():
        return True
    assert isinstance(scale_before, Tensor)  # the loop passes the scale tensor whenever the scaler is enabled
    return scaler.scale(torch.ones((), device=scale_before.device)) >= scale_before


def _training_batches(
    dataset: Dataset | DeviceSplit, config: RunConfig, seed: int, device: torch.device
) -> Iterable[tuple[Tensor, dict[str, Tensor]]]:
    """The epoch's shuffled batches (seeded); in a distributed job, this rank's share of each global batch.

    A last batch of one sample is dropped: BatchNorm cannot normalise it in training mode (e.g. DeepLabV3+'s image
    pooling); any other remainder is trained on. With R ranks rank r takes every R-th sample of each global batch
    of ``batch_size`` samples, so the ranks' batches together are the single-process batch; a last global batch
    that does not split evenly over the ranks is dropped. A split kept on the device (``data_on_device``) is
    batched by indexing there, in the same order.
    """
    order = torch.Generator().manual_seed(seed)
    size, ranks = len(dataset), distributed.world_size()  # type: ignore[arg-type]  # map-style: it has a length
    lone_last = size % config.batch_size == 1 and size > 1
    loading = _loader_options(config, device)
    if ranks == 1 and not isinstance(dataset, DeviceSplit):
        return DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=order, drop_last=lone_last,
                          **loading)
    # The single process's batches of sample indices: the same loader over range(size) draws the same order.
    indices: DataLoader[Any] = DataLoader(
        range(size), batch_size=config.batch_size, shuffle=True, generator=order, drop_last=lone_last  # type: ignore[arg-type]
    )
    batches = [batch.tolist() for batch in indices]
    if ranks > 1:
        if batches and len(batches[-1]) % ranks:
            batches.pop()
        rank = distributed.rank()
        batches = [batch[rank::ranks] for batch in batches]
    if isinstance(dataset, DeviceSplit):
        return dataset.batches(batches)
    # Its own generator, so that creating the loader draws nothing from torch's global random state.
    return DataLoader(dataset, batch_sampler=batches, generator=torch.Generator().manual_seed(seed), **loading)


def _loader_options(config: RunConfig, device: torch.device) -> dict[str, Any]:
    """DataLoader workers (``loader_workers``) and pinned host memory for copies to a GPU."""
    return {"num_workers": config.loader_workers, "pin_memory": device.type == "cuda",
            "persistent_workers": False}


def _evaluate_finite(model: MultiTaskModel, data: MultiTaskData, split: str, config: RunConfig, epoch: int,
                     device: torch.device, resident: Mapping[str, DeviceSplit]) -> dict[str, float]:
    """One split's metrics, computed by rank 0 and shared with every rank in a distributed job."""
    metrics = None
    if distributed.rank() == 0:
        dataset = resident.get(split, getattr(data, split))
        metrics = evaluate(model, data.tasks, dataset, config.eval_batch_size, device, config.precision)
    metrics = distributed.broadcast_object(metrics)
    assert metrics is not None  # rank 0 computed them and every rank has them now
    bad = {key: value for key, value in metrics.items() if not math.isfinite(value)}
    if bad:
        raise TrainingDivergedError(f"training diverged in epoch {epoch}: {split} metrics {bad} are not finite")
    return metrics


def train(
    config: RunConfig,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
    data: MultiTaskData | None = None,
    device: str | torch.device | None = None,
) -> RunResult:
    """Train one run and return its per-epoch validation and test metrics.

    Args:
        config: the run.
        checkpoint_dir: where ``{run_id}.pt`` is written atomically after every epoch; a run started again with the
            same folder resumes after its last finished epoch and gives the same result as an uninterrupted run.
            The checkpoint is removed when the run finishes.
        on_epoch: called with each epoch's record (e.g. progress reporting).
        data: an already built dataset (otherwise built from ``config.dataset``).
        device: where to train; default ``config.device`` (``"auto"``: CUDA, else MPS, else CPU). Checkpoints
            are loaded onto it, so a run interrupted on one device resumes on another.

    Raises:
        TrainingDivergedError: a loss, weight or metric became NaN or infinite (the message names epoch, step, task).
        ConfigError: a config value the data, model or method rejects (the message names the field).
        CheckpointError: the run's checkpoint is unreadable or belongs to another run (the message names the file).
        DeviceError: the device is not available here.

    Example:
        >>> from taskbalance.training import RunConfig, train
        >>> tiny = {"num_train": 64, "num_val": 16, "num_test": 16}
        >>> result = train(RunConfig(dataset_options=tiny, epochs=1, max_steps_per_epoch=2, method="uwso",
        ...                          method_options={"temperature": 1.0}))
        >>> sorted(result.epochs[-1].val)
        ['depth/mae', 'depth/rmse', 'left/accuracy', 'right/accuracy']
    """
    device = resolve_device(config.device if device is None else device)
    with determinism(device, config.deterministic):
        return _train_on(device, config, checkpoint_dir, on_epoch, data)


def _train_on(
    device: torch.device,
    config: RunConfig,
    checkpoint_dir: Path | None,
    on_epoch: EpochCallback | None,
    data: MultiTaskData | None,
) -> RunResult:
    if device.type == "cuda":
        # The run's own peak: a pool worker trains many runs one after another on the same GPU.
        torch.cuda.reset_peak_memory_stats(device)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(config.seed)
    ranks = distributed.world_size()
    if config.batch_size % ranks:
        raise ConfigError(f"batch_size {config.batch_size} does not split over {ranks} processes; use a multiple")
    data, model, method = build(config, data, sync_across_ranks=ranks > 1)
    if ranks > 1 and device.type == "cuda":
        # Batch statistics of the global batch (SyncBatchNorm needs CUDA; on CPU each rank normalises its share).
        # It converts the modules in place and returns the same MultiTaskModel.
        model = cast(MultiTaskModel, nn.SyncBatchNorm.convert_sync_batchnorm(model))
    state = _initial_state(config, model.to(device), method.to(device))
    state.wall_start, state.cpu_start = wall_start, cpu_start
    run_id = config.run_id()
    checkpoint_path = checkpoint_dir / f"{run_id}.pt" if checkpoint_dir is not None else None
    if checkpoint_path is not None:
        if distributed.rank() == 0:
            remove_stale_temporaries(checkpoint_path)
        distributed.barrier()
        checkpoint = load_checkpoint(checkpoint_path, run_id, map_location=device)
        if checkpoint is not None:
            state.restore(checkpoint)

    resident = DeviceSplit.all_of(data, device) if config.data_on_device else {}
    task_names = list(data.tasks)
    for epoch in range(state.next_epoch, config.epochs + 1):
        epoch_start = time.perf_counter()
        lr = state.optimizer.param_groups[0]["lr"]
        mean_losses, mean_weights = train_epoch(state, data, config, epoch, device, resident)
        state.method.end_epoch(mean_losses)
        state.scheduler.step()
        record = EpochRecord(
            epoch=epoch,
            train_losses=dict(zip(task_names, mean_losses.tolist(), strict=True)),
            val=_evaluate_finite(model, data, "val", config, epoch, device, resident),
            test=_evaluate_finite(model, data, "test", config, epoch, device, resident),
            mean_weights=dict(zip(task_names, mean_weights.tolist(), strict=True)),
            lr=lr,
            seconds=time.perf_counter() - epoch_start,
        )
        state.records.append(record)
        if checkpoint_path is not None and epoch < config.epochs:
            if distributed.rank() == 0:
                save_atomically(state.checkpoint(run_id), checkpoint_path)
            distributed.barrier()
        if on_epoch is not None:
            on_epoch(record)

    result = RunResult(
        config=config,
        tasks=task_names,
        higher_is_better={f"{n}/{m.name}": m.higher_is_better for n, task in data.tasks.items() for m in task.metrics},
        epochs=state.records,
        steps=state.steps,
        step_weights=state.step_weights,
        step_losses=state.step_losses,
        ms_per_step=1000 * statistics.median(state.step_times) if state.step_times else 0.0,
        peak_memory_mb=_peak_memory_mb(device),
        wall_seconds=state.wall_seconds(),
        cpu_seconds=state.cpu_seconds(),
        environment=device_record(device),
        method_diagnostics={name: float(value) for name, value in method.diagnostics().items()},
    )
    distributed.barrier()  # every rank has finished before rank 0 removes the checkpoint
    if checkpoint_path is not None and distributed.rank() == 0:
        checkpoint_path.unlink(missing_ok=True)
    return result


def _initial_state(config: RunConfig, model: MultiTaskModel, method: Method) -> TrainingState:
    """The optimizer (Adam or SGD) over the model (with weight decay) and the method's own parameters (without), and
    the StepLR schedule."""
    own = list(method.parameters())
    if config.method_lr is not None and own and not learns_parameters(config.method, config.method_options):
        # Its runs' identity leaves method_lr out, so the store would pass runs of other rates off as one.
        raise ConfigError(f"method_lr: method {config.method!r} has parameters of its own but does not declare "
                          "learns_parameters = True, so its runs' identity would not include method_lr")
    groups = [
        {"params": list(model.parameters()), "weight_decay": config.weight_decay},
        # No weight decay on a method's own parameters (UW's log-variances): it would bias the weighting.
        {"params": own, "weight_decay": 0.0,
         **({"lr": config.method_lr} if config.method_lr is not None else {})},
    ]
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    else:
        optimizer = torch.optim.Adam(groups, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    device = next(model.parameters()).device
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    return TrainingState(model, method, optimizer, scheduler, scaler)
