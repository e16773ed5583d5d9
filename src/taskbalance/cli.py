"""The ``taskbalance`` command: ``bench``, ``train``, ``methods``, ``report``."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_OUT = Path("runs/bench")
# Kept in step with taskbalance.protocol.presets.PRESETS (a test checks it): importing the presets here would load
# torch and every dataset module for `taskbalance --help`.
PRESET_NAMES = ("fast", "full", "reproduction", "nyuv2-segnet", "nyuv2-deeplabv3plus", "cityscapes-segnet",
                "cityscapes-deeplabv3plus", "celeba-resnet18")


def _csv(kind: type, value: str | None) -> list[Any] | None:
    if value is None:
        return None
    try:
        return [kind(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected a comma-separated list of {kind.__name__}, got {value!r}") from None


def _positive_csv(flag: str, value: str | None) -> list[float] | None:
    """A comma-separated list of finite numbers > 0 (e.g. learning rates); a usage error naming ``flag`` otherwise."""
    numbers = _csv(float, value)
    bad = [v for v in numbers or [] if not (math.isfinite(v) and v > 0)]
    if bad:
        raise click.BadParameter(f"every value must be a finite number > 0, got {bad[0]:g}", param_hint=flag)
    return numbers


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to a dict; values are parsed as JSON when they can be (numbers, booleans, lists)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _method_options(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``METHOD.KEY=VALUE`` pairs to ``{method: {key: value}}`` (values parsed as in :func:`_options`)."""
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        target, sep, _ = pair.partition("=")
        method, dot, key = target.partition(".")
        if not sep or not dot or not method or not key:
            raise click.BadParameter(f"expected METHOD.KEY=VALUE (e.g. stch.warmup_epochs=1), got {pair!r}")
        options.setdefault(method, {}).update(_options((pair[len(method) + 1 :],)))
    return options


def _console() -> Console:
    """A rich console; when output is not a terminal (CI logs, files) wide enough that tables are not truncated."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _configure_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="taskbalance")
def main() -> None:
    """Loss weighting for multi-task learning: UW-SO and its baselines, and the paper's benchmark protocol.

    Methods, datasets and models of your own come in as plugins: modules named by the TASKBALANCE_PLUGINS
    variable (comma-separated) or by entry points of the group taskbalance.plugins (docs/architecture.md).
    """
    from taskbalance.plugins import PluginError, load_plugins

    try:
        load_plugins()
    except PluginError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option("--preset", "preset_name", type=click.Choice(PRESET_NAMES), default=None,
              help="The benchmark setup [default: fast]; explicit flags override its values (docs/protocol.md).")
@click.option("--dry-run", is_flag=True,
              help="Print the runs the preset would start and the compute, without training or reading the data.")
@click.option("--dataset", default=None, help="Registry name of the dataset [default: the preset's].")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Folder of an on-disk dataset.")
@click.option("--dataset-option", "dataset_option_pairs", multiple=True, metavar="KEY=VALUE",
              help="Option of the dataset builder (repeatable), e.g. num_train=2000.")
@click.option("--model", default=None, help="Registry name of the model [default: the preset's].")
@click.option("--model-option", "model_option_pairs", multiple=True, metavar="KEY=VALUE",
              help="Option of the model builder (repeatable), e.g. pretrained=resnet50.pth (local ImageNet weights).")
@click.option("--methods", "methods_csv", default=None,
              help="Comma-separated methods [default: the preset's, the paper's methods].")
@click.option("--method-option", "method_option_pairs", multiple=True, metavar="METHOD.KEY=VALUE",
              help="A fixed hyper-parameter of one method, e.g. stch.warmup_epochs=1 or pcgrad.weighting=uwso "
                   "(repeatable; VALUE is parsed as JSON when it can be).")
@click.option("--seeds", "seeds_csv", default=None, help="Comma-separated seeds [default: the preset's, 0,1,2].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs per run [default: the preset's].")
@click.option("--lrs", "lrs_csv", default=None, help="Comma-separated learning rates [default: the preset's].")
@click.option("--temperatures", "temperatures_csv", default=None,
              help="UW-SO's temperature grid [default: the preset's].")
@click.option("--full", is_flag=True, help="Same as --preset full.")
@click.option("--delta-m", "delta_m_variant", type=click.Choice(["all_metrics", "per_task"]), default="all_metrics",
              show_default=True, help="Δm over all metrics (the paper) or averaged per task first.")
@click.option("--max-steps", type=click.IntRange(min=0), default=None, help="Cap on steps per epoch (0: no cap).")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default=None,
              help="Optimizer of every run [default: the preset's, adam]; part of a run's identity when not adam.")
@click.option("--momentum", type=click.FloatRange(min=0, max=1, max_open=True), default=None,
              help="SGD's momentum (with --optimizer sgd) [default 0]; part of a run's identity when not 0.")
@click.option("--method-lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate of a method's own parameters (UW's log-variances, GradNorm's weights) [default: "
                   "the model's]; part of the identity of runs whose method has such parameters.")
@click.option("--eval-batch-size", type=click.IntRange(min=1), default=None,
              help="Batch size of the evaluation passes [default: the preset's; 1024, 16 on NYUv2, 128 on "
                   "Cityscapes]; part of a run's identity. "
                   "It changes the metrics only with --dataset-option metric_averaging=batch (docs/datasets.md).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Output folder: results store, report, checkpoints.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (with --executor ray).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Parallel runs on the CPU (on GPUs: one worker per GPU and slot, see --runs-per-device).")
@click.option("--device", default=None,
              help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps [default: the preset's, auto].")
@click.option("--devices", "devices_csv", default=None, metavar="0,2",
              help="GPU indices to place runs on [default: every visible GPU].")
@click.option("--runs-per-device", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs sharing one GPU at a time (local pool: workers per GPU; Ray: fractional num_gpus).")
@click.option("--nproc-per-run", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes of each run, data-parallel (gloo on CPU, one GPU each on CUDA).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Forward precision of every run [default: the preset's, fp32]; part of a run's identity.")
@click.option("--deterministic", is_flag=True, help="Deterministic CUDA kernels (not part of a run's identity).")
@click.option("--data-on-device", is_flag=True,
              help="Keep in-memory datasets (MultiFashion) on the device and batch there (same result).")
@click.option("--loader-workers", type=click.IntRange(min=0), default=None,
              help="DataLoader workers for on-disk datasets [default 0] (part of a run's identity when > 0).")
@click.option("--mlflow-uri", default=None, metavar="URI",
              help="Also log every run to MLflow at this tracking URI (needs taskbalance[mlflow]), "
                   "e.g. sqlite:///runs/bench/mlflow.db.")
def bench(
    preset_name: str | None,
    dry_run: bool,
    dataset: str | None,
    data_root: Path | None,
    dataset_option_pairs: tuple[str, ...],
    model: str | None,
    model_option_pairs: tuple[str, ...],
    methods_csv: str | None,
    method_option_pairs: tuple[str, ...],
    seeds_csv: str | None,
    epochs: int | None,
    lrs_csv: str | None,
    temperatures_csv: str | None,
    full: bool,
    delta_m_variant: str,
    max_steps: int | None,
    optimizer: str | None,
    momentum: float | None,
    method_lr: float | None,
    eval_batch_size: int | None,
    out: Path,
    executor: str,
    address: str | None,
    workers: int,
    device: str | None,
    devices_csv: str | None,
    runs_per_device: int,
    nproc_per_run: int,
    precision: str | None,
    deterministic: bool,
    data_on_device: bool,
    loader_workers: int | None,
    mlflow_uri: str | None,
) -> None:
    """Run the paper's protocol and print the table of test Δm per method.

    STL baselines for every task, every method over its grid and the seeds, selection by validation Δm, test Δm
    mean ± std. Finished runs are kept in OUT/results.sqlite and skipped when the command is run again.
    """
    from taskbalance.execution import RunsFailedError, run_configs
    from taskbalance.protocol.bench import plan, run_bench, template_line
    from taskbalance.protocol.presets import PRESETS, PlanFlops, describe_plan, plan_flops
    from taskbalance.report import render_table, write_report
    from taskbalance.store import MlflowUnavailableError, mirror_to_mlflow

    if full and preset_name not in (None, "full"):
        raise click.UsageError(f"--full is --preset full; it cannot be combined with --preset {preset_name}")
    preset = PRESETS[preset_name or ("full" if full else "fast")]
    console = _console()
    if address is not None and executor != "ray":
        raise click.UsageError("--address is the Ray cluster to run on: it needs --executor ray")
    if executor == "ray" and address is None and nproc_per_run > workers:
        # Each run asks Ray for one CPU per process; the local instance has --workers CPUs: it would wait forever.
        raise click.UsageError(f"--nproc-per-run {nproc_per_run} needs {nproc_per_run} CPUs per run, but the local "
                               f"Ray instance gets --workers {workers}: use --workers {nproc_per_run} or more")
    if mlflow_uri is not None:
        from taskbalance.store.mlflow_mirror import check_tracking_uri

        try:
            check_tracking_uri(mlflow_uri)  # before the sweep: the mirror runs only after it
        except MlflowUnavailableError as error:
            raise click.UsageError(str(error)) from None
        except ValueError as error:
            raise click.UsageError(f"--mlflow-uri: {error}") from None
    if executor == "ray":
        from taskbalance.execution import RayUnavailableError
        from taskbalance.execution.ray_tasks import import_ray

        try:
            import_ray()  # fail before any run starts, not after the first phase
        except RayUnavailableError as error:
            raise click.UsageError(str(error)) from None
    dataset = dataset or preset.run.dataset
    dataset_options = {**preset.run.dataset_options, **_options(dataset_option_pairs)}
    if data_root is not None:
        dataset_options["root"] = str(data_root)
    own_dataset = dataset == preset.run.dataset
    if own_dataset and preset.needs_data_root and "root" not in dataset_options and not dry_run:
        raise click.UsageError(
            f"--preset {preset.name} trains on {dataset}: name the folder of its files with --data-root PATH "
            "(see docs/datasets.md), or add --dry-run to see the plan without the data"
        )
    tasks = None
    if dry_run and own_dataset and preset.needs_data_root:
        # A plan needs no files (it may be made away from the data): only what the preset knows is checked.
        task_names = _preset_tasks(dataset, preset.task_names, dataset_options)
    else:
        tasks = _dataset_tasks(dataset, dataset_options)  # the dataset tells its tasks without loading
        task_names = list(tasks)
    run_changes: dict[str, Any] = {"dataset": dataset, "dataset_options": dataset_options,
                                   "model_options": {**preset.run.model_options, **_options(model_option_pairs)}}
    for field_name, value in (("model", model), ("epochs", epochs), ("max_steps_per_epoch", max_steps),
                              ("optimizer", optimizer), ("momentum", momentum), ("method_lr", method_lr),
                              ("eval_batch_size", eval_batch_size),
                              ("device", device), ("precision", precision), ("deterministic", deterministic or None),
                              ("data_on_device", data_on_device or None), ("loader_workers", loader_workers)):
        if value is not None:
            run_changes[field_name] = value
    spec_changes: dict[str, Any] = {"delta_m_variant": delta_m_variant,
                                    "method_options": _method_options(method_option_pairs)}
    for field_name, kind, value in (("methods", str, methods_csv), ("seeds", int, seeds_csv)):
        if value is not None:
            spec_changes[field_name] = _csv(kind, value)
    for field_name, flag, value in (("lrs", "--lrs", lrs_csv), ("temperatures", "--temperatures", temperatures_csv)):
        if value is not None:
            spec_changes[field_name] = _positive_csv(flag, value)
    try:
        spec = preset.spec(task_names, run_changes=run_changes, **spec_changes)
    except (ValueError, KeyError) as error:
        raise click.UsageError(str(error)) from None
    _check_model(spec.run.model, spec.run.model_options)
    if spec.run.dataset_options.get("metric_averaging") == "batch" and eval_batch_size is None:
        click.echo(f"note: metric_averaging=batch averages the metrics over evaluation batches of "
                   f"{spec.run.eval_batch_size} images (the preset's), and the values depend on that size; MTAN's "
                   "and Nash-MTL's NYUv2 code evaluates in batches of 2 (--eval-batch-size 2)", err=True)
    if dry_run:
        measured = own_dataset and spec.run.model == preset.run.model and not spec.run.max_steps_per_epoch
        bench_plan = plan(spec)
        flops: PlanFlops | str = "the input size of another dataset than the preset's is known only from its files"
        if own_dataset:
            try:
                flops = plan_flops(bench_plan, spec, preset)
            except ValueError as error:
                flops = str(error)
        plan_lines = describe_plan(bench_plan, preset, workers=workers, measured=measured, flops=flops)
        for line in [template_line(spec.run), *plan_lines]:
            console.print(line)
        return
    _check_methods_build(spec, tasks)
    placement, run_fn = _placement(spec.run.device, devices_csv, runs_per_device, nproc_per_run)

    out.mkdir(parents=True, exist_ok=True)
    failures: list[RunsFailedError] = []
    with _open_store(out / "results.sqlite") as store:

        def run_many(configs: list) -> dict:
            # A failed run (e.g. a diverged training) does not stop the sweep: the protocol goes on without it.
            try:
                return run_configs(
                    configs, store=store, executor=executor, workers=workers, address=address,
                    checkpoint_dir=out / "checkpoints", placement=placement, run_fn=run_fn,
                )
            except RunsFailedError as error:
                failures.append(error)
                return error.results

        summary = run_bench(spec, run_many, log=console.print)
        store.save_summary("bench", summary.to_dict())
        console.print(render_table(summary))
        for note in summary.notes:
            console.print(f"• {note}")
        report = write_report(store, out)
        if mlflow_uri is not None:
            try:
                mirrored = mirror_to_mlflow(store.results(dataset=dataset), mlflow_uri, f"taskbalance-{dataset}")
            except MlflowUnavailableError as error:
                raise click.ClickException(str(error)) from None
            except Exception as error:  # the server or database MLflow reaches; its exception types vary by store
                raise click.ClickException(
                    f"--mlflow-uri {mlflow_uri}: mirroring failed ({type(error).__name__}: {error}); every run is "
                    f"kept in {out / 'results.sqlite'}, and running the same command again mirrors the rest"
                ) from None
            console.print(f"MLflow: {len(mirrored)} runs in experiment taskbalance-{dataset} at {mlflow_uri}")
    console.print(f"Report: {report}   (wall time {summary.wall_seconds / 60:.1f} min)")
    if failures:
        lines = "\n".join(str(error) for error in failures)
        raise click.ClickException(
            f"{lines}\nThe table above leaves the failed runs out; finished runs are kept in {out / 'results.sqlite'}."
        )


def _preset_tasks(dataset: str, known: Sequence[str], options: dict[str, Any]) -> list[str]:
    """The tasks a preset's dry run plans for, without the dataset's files: the preset's, or ``tasks`` among them,
    checked as the dataset itself checks them; every option's name is checked against the dataset's builder."""
    from taskbalance.data import DatasetOptionError, check_option_values
    from taskbalance.data.mtan_layout import choose_tasks

    try:
        check_option_values(dataset, options)  # names and values: no folder is needed for either
    except DatasetOptionError as error:
        raise click.UsageError(f"--dataset-option {error.option}: {error}") from None
    except (TypeError, ValueError) as error:
        raise click.UsageError(f"--dataset-option: {error}") from None
    try:
        return choose_tasks(dataset, known, options.get("tasks"))
    except (KeyError, TypeError, ValueError) as error:
        raise click.UsageError(f"--dataset-option tasks: {error.args[0] if error.args else error}") from None


def _dataset_tasks(dataset: str, options: dict[str, Any]) -> dict[str, Any]:
    """The dataset's tasks without loading it; a bad dataset, option or folder is a usage error naming the flag."""
    from taskbalance import data as datasets

    try:
        return datasets.dataset_tasks(dataset, **options)
    except datasets.DatasetOptionError as error:
        if error.option == "root":
            raise click.UsageError(f"--dataset {dataset} needs --data-root (the folder of its files)") from None
        raise click.UsageError(f"--dataset-option {error.option}: {error}") from None
    except KeyError as error:
        raise click.UsageError(f"--dataset {dataset}: {error.args[0]}") from None
    except (TypeError, ValueError, OSError) as error:
        raise click.UsageError(f"--dataset {dataset}: {error}") from None


def _placement(device: str, devices_csv: str | None, runs_per_device: int, nproc_per_run: int) -> tuple[Any, Any]:
    """Where the runs go: a GPU placement when the runs' device is CUDA, and the run function for N processes.

    The device is checked here, before any run starts: a device that is not there is a usage error naming it.
    """
    from functools import partial

    from taskbalance.execution.placement import GpuPlacement, visible_gpus
    from taskbalance.training.data_parallel import train_data_parallel
    from taskbalance.training.devices import DeviceError, resolve_device

    try:
        resolved = resolve_device(device)
    except DeviceError as error:
        raise click.UsageError(f"--device: {error}") from None
    placement = None
    if resolved.type == "cuda":
        visible = visible_gpus()
        chosen = tuple(_csv(int, devices_csv) or visible)
        missing = sorted(set(chosen) - set(visible))
        if missing:
            raise click.UsageError(f"--devices: GPU(s) {missing} are not visible here; visible: {list(visible)}")
        try:
            placement = GpuPlacement(chosen, runs_per_device, nproc_per_run)
            placement.worker_slots()
        except ValueError as error:
            raise click.UsageError(f"--devices/--nproc-per-run: {error}") from None
    elif devices_csv is not None:
        raise click.UsageError(f"--devices places runs on GPUs, but the runs' device is {resolved}")
    run_fn = partial(train_data_parallel, processes=nproc_per_run) if nproc_per_run > 1 else None
    return placement, run_fn


def _check_model(model: str, options: dict[str, Any]) -> None:
    """The model exists and takes these options (by name; values are checked when a run builds it)."""
    import inspect

    from taskbalance.models import MODELS

    try:
        builder = MODELS.get(model)
    except KeyError as error:
        raise click.UsageError(f"--model: {error.args[0]}") from None
    parameters = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    takes = [name for name in parameters if name not in ("heads", "in_channels")]
    unknown = [name for name in options if name not in takes]
    if unknown:
        raise click.UsageError(f"--model-option {unknown[0]}: model {model!r} has no option {unknown[0]!r}; its "
                               f"options: {', '.join(takes) or 'none'}")


@contextmanager
def _open_store(path: Path) -> Iterator[Any]:
    """The results store at ``path``; an unreadable file is a usage error naming it and what to do."""
    from taskbalance.store import RunStore, StoreError

    try:
        store = RunStore(path)
    except StoreError as error:
        raise click.UsageError(str(error)) from None
    with store:
        yield store


def _check_methods_build(spec: Any, tasks: Any) -> None:
    """Build every method at every grid point once, so a bad option fails before the first run, not after phase 1."""
    from taskbalance import methods

    trained = {name: tasks[name] for name in spec.trained_tasks}
    for name in spec.methods:
        for point in spec.grid(name):
            try:
                methods.create(name, trained, **point)
            except (ValueError, TypeError) as error:
                raise click.UsageError(f"--methods {name}: {error}") from None


@main.command()
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Store the result in OUT/results.sqlite.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch threads.")
@click.option("--device", default=None,
              help="auto, cpu, cuda, cuda:N or mps; overrides the config's device (not part of the run's identity).")
def train(config_file: Path, out: Path | None, threads: int, device: str | None) -> None:
    """Train one run from a TOML config (fields of taskbalance.training.RunConfig).

    Data-parallel over N processes: torchrun --nproc-per-node=N -m taskbalance train CONFIG_FILE.
    """
    from rich.table import Table

    from taskbalance.data import DatasetFormatError
    from taskbalance.training import ConfigError, RunConfig
    from taskbalance.training import train as train_run
    from taskbalance.training.checkpoint import CheckpointError
    from taskbalance.training.devices import DeviceError, resolve_device

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        values = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise click.UsageError(f"{config_file}: cannot be read as UTF-8 text: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise click.UsageError(f"{config_file}: not valid TOML: {error}") from None
    try:
        config = RunConfig.from_dict(values)
    except ConfigError as error:
        raise click.UsageError(f"{config_file}: {error}") from None
    if device is not None:
        try:
            config = config.replace(device=device)
            resolve_device(config.device)
        except (ConfigError, DeviceError) as error:
            raise click.UsageError(f"--device: {error}") from None
    _configure_threads(threads)
    from taskbalance import distributed

    # Under torchrun every rank trains; rank 0 alone prints and writes the store.
    try:
        distributed.init_from_environment(config.device)
    except ValueError as error:
        raise click.UsageError(f"--device: {error}") from None
    with distributed.leaving_together():
        console = _console()
        if distributed.rank() != 0:
            console.quiet = True

        def show_epoch(record: Any) -> None:
            losses = ", ".join(f"{k} {v:.4f}" for k, v in record.train_losses.items())
            console.print(f"epoch {record.epoch}: train loss {losses} ({record.seconds:.1f} s)")

        checkpoint_dir = out / "checkpoints" if out is not None else None
        if out is not None and distributed.rank() == 0:
            with _open_store(out / "results.sqlite"):
                pass  # an unusable store is refused before the run trains, not after
        try:
            result = train_run(config, checkpoint_dir=checkpoint_dir, on_epoch=show_epoch)
        except ConfigError as error:
            raise click.UsageError(f"{config_file}: {error}") from None
        except (DatasetFormatError, FileNotFoundError) as error:
            raise click.UsageError(f"{config_file}: dataset {config.dataset!r}: {error}") from None
        except CheckpointError as error:
            raise click.UsageError(f"--out {out}: {error}") from None
        except DeviceError as error:
            raise click.UsageError(f"{config_file}: device: {error}") from None
        except ValueError as error:  # the run itself failed, e.g. its training diverged (the message says where)
            raise click.ClickException(f"{config_file}: the run failed: {error}") from None
        table = Table(title=f"run {result.run_id}: last epoch")
        table.add_column("metric")
        table.add_column("validation", justify="right")
        table.add_column("test", justify="right")
        last = result.epochs[-1]
        for key in last.val:
            table.add_row(key, f"{last.val[key]:.4f}", f"{last.test[key]:.4f}")
        console.print(table)
        console.print(f"{result.ms_per_step:.1f} ms/step, peak memory {result.peak_memory_mb:.0f} MiB")
        if out is not None and distributed.rank() == 0:
            out.mkdir(parents=True, exist_ok=True)
            with _open_store(out / "results.sqlite") as store:
                store.save(result)
            console.print(f"stored in {out / 'results.sqlite'}")


@main.command(name="methods")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_methods(as_json: bool) -> None:
    """List every method with its formula and hyper-parameters."""
    from dataclasses import asdict

    from rich.table import Table

    from taskbalance import methods

    infos = [methods.info(name) for name in methods.names()]
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2, ensure_ascii=False))
        return
    table = Table(title="taskbalance methods", show_lines=True)
    for column in ("name", "kind", "formula", "hyper-parameters", "paper"):
        table.add_column(column, overflow="fold")
    for i in infos:
        hp = "\n".join(f"{k}: {v}" for k, v in i.hyperparameters.items()) or "—"
        table.add_row(f"{i.name} ({i.label})", i.kind, i.formula, hp, i.paper)
    _console().print(table)


@main.command()
@click.argument("output_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--summary", "summary_name", default=None, metavar="NAME",
              help="Which benchmark of the store to report [default: `bench`, the one `taskbalance bench` writes; "
                   "a store without it (e.g. the reproduction study's) shows every benchmark's table].")
def report(output_dir: Path, summary_name: str | None) -> None:
    """Write report.md, results.csv and plots from OUTPUT_DIR/results.sqlite.

    A store with several benchmarks (the reproduction study keeps one per part) gets the report of the one named
    by --summary, written to OUTPUT_DIR/NAME/; without --summary its tables are printed.
    """
    from taskbalance.report import read_summary, render_table, write_report

    database = output_dir / "results.sqlite"
    if not database.exists():
        raise click.UsageError(f"{database} does not exist: run `taskbalance bench --out {output_dir}` first")
    with _open_store(database) as store:
        names = store.summary_names()
        if not names:
            raise click.UsageError(f"{database} holds no benchmark summary: run `taskbalance bench` first")
        if summary_name is None and "bench" not in names:
            for name in names:
                summary = read_summary(store, name)
                assert summary is not None
                _console().print(f"[bold]{name}[/bold] ({summary.dataset}, {summary.model})")
                _console().print(render_table(summary))
            click.echo(f"{database} holds the benchmarks {', '.join(names)}; "
                       "write the report of one with --summary NAME")
            return
        name = summary_name or "bench"
        if name not in names:
            raise click.UsageError(f"--summary {name}: {database} holds the benchmarks {', '.join(names)}")
        summary = read_summary(store, name)
        assert summary is not None
        _console().print(render_table(summary))
        path = write_report(store, output_dir if name == "bench" else output_dir / name, summary_name=name)
    click.echo(f"Report: {path}")


@main.command()
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
def merge(output_dir: Path, sources: tuple[Path, ...]) -> None:
    """Copy into OUTPUT_DIR/results.sqlite the finished runs of other stores that it lacks.

    For one sweep run in pieces on several machines (part on a GPU box, part here): each SOURCE is a results.sqlite
    file or a folder holding one (another machine's --out). A run finished in both is the same experiment (a run
    id does not depend on the device) and OUTPUT_DIR's result is kept; runs that are running or failed in a SOURCE
    are not copied. Summaries are not copied: rerun `taskbalance bench --out OUTPUT_DIR` with the sweep's flags,
    which trains only what is still missing and writes the summary and the report.
    """
    database = output_dir / "results.sqlite"
    files = []
    for source in sources:
        file = source / "results.sqlite" if source.is_dir() else source
        if not file.is_file():
            raise click.UsageError(f"SOURCE {source}: no results store there (expected a results.sqlite file or a "
                                   "folder holding one)")
        if file.resolve() == database.resolve():
            raise click.UsageError(f"SOURCE {source} is OUTPUT_DIR's own store")
        files.append(file)
    from taskbalance.store import StoreError

    with _open_store(database) as target:
        for file in files:
            with _open_store(file) as source:
                try:
                    copied = target.merge_from(source)
                except StoreError as error:
                    raise click.ClickException(str(error)) from None
            click.echo(f"{file}: {len(copied)} finished run(s) copied")
        finished = sum(1 for status in target.statuses().values() if status == "finished")
    click.echo(f"{database}: {finished} finished runs")


if __name__ == "__main__":  # pragma: no cover
    main()
