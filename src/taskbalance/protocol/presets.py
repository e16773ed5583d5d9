"""Benchmark presets: every setting of ``taskbalance bench --preset NAME``, constructed here and nowhere else.

A preset is a :class:`~taskbalance.training.RunConfig` template (dataset, model, epochs, batch size, LR schedule,
weight decay; every other field keeps RunConfig's default) plus the protocol's grids (learning rates, UW-SO's
temperatures), seeds and search mode. ``fast`` is the default ``taskbalance bench``; ``full`` is ``--full``; the
others are the paper's setups (Kirchdorfer et al. 2024, arXiv 2408.07985, Sec. 5 and its appendix, which follow
Elich et al. 2024, "Examining common paradigms in multi-task learning"): Adam, weight decay 1e-5, the LR grid
{1e-4, 1e-3, 1e-2}, the LR halved every 100 epochs (CelebA: every 30), 3 seeds, every grid point on every seed.
docs/protocol.md lists every value with its source.

Example:
    >>> spec = PRESETS["fast"].spec()
    >>> spec.run.epochs, spec.lrs, spec.temperatures, spec.search
    (3, [0.001], [1.0, 3.0, 5.0, 10.0, 20.0], 'one_seed')
    >>> PRESETS["cityscapes-segnet"].run.batch_size, PRESETS["cityscapes-segnet"].run.epochs
    (64, 300)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskbalance.data import multifashion
from taskbalance.data.celeba import CELEBA_SIZE
from taskbalance.data.celeba_files import CELEBA_ATTRIBUTES
from taskbalance.data.cityscapes import cityscapes_tasks
from taskbalance.data.multifashion import multifashion_tasks
from taskbalance.data.nyuv2 import nyuv2_tasks
from taskbalance.method import StepPasses
from taskbalance.methods import method_class
from taskbalance.models.flops import ForwardFlops, forward_flops
from taskbalance.protocol.bench import PAPER_METHODS, BenchPlan, BenchSpec, search_grid
from taskbalance.protocol.grid import PAPER_TEMPERATURES
from taskbalance.tasks.binary_attribute import BinaryAttribute
from taskbalance.training.config import RunConfig
from taskbalance.types import HeadSpec, SearchSpace

PAPER_LRS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
"""The learning-rate grid of the paper's setups (the authors' code searches {1e-4, 1e-3, 1e-2})."""

CITYSCAPES_TEMPERATURES: tuple[float, ...] = (*PAPER_TEMPERATURES, 30.0, 50.0, 75.0, 100.0)
"""The paper's T grid extended upward: Cityscapes' inverse-depth loss is small (1/L large), and the paper selects
T ≈ 50–100 there; 30–100 is taskbalance's extension covering that range."""

FAST_TEMPERATURES: tuple[float, ...] = (1.0, 3.0, 5.0, 10.0, 20.0)
"""Five of the paper's seven temperatures, so that the default benchmark fits 15 minutes on 2 CPU cores."""


@dataclass(frozen=True)
class Preset:
    """One benchmark setup.

    Attributes:
        name: what ``--preset`` takes.
        summary: one line for ``--help`` and the dry run.
        run: the template of every run (see :class:`~taskbalance.protocol.bench.BenchSpec`).
        heads: the dataset's tasks in order with the head each needs, known without reading its files (for
            ``--dry-run``).
        input_shape: one sample's input (channels, height, width), for the dry run's FLOP count.
        lrs: learning-rate grid.
        temperatures: UW-SO's temperature grid.
        search: ``"one_seed"`` or ``"all_seeds"``.
        methods: the methods compared; :meth:`spec` leaves out those whose grid the trained tasks do not allow
            (Scalarization's simplex for the 40 CelebA tasks).
        seeds: the reported seeds.
        needs_data_root: the dataset is read from files named by ``--data-root``.
        num_train: training samples per epoch (for the compute estimate of the dry run).
        num_evaluated: validation and test samples, both evaluated after every epoch (for the FLOP count).
        epoch_seconds: measured wall seconds of one EW epoch on one CPU thread, evaluation included, or None where
            taskbalance has no measurement (the dry run then gives the compute in epochs and samples only).
    """

    name: str
    summary: str
    run: RunConfig
    heads: Mapping[str, HeadSpec]
    input_shape: tuple[int, int, int]
    lrs: tuple[float, ...]
    temperatures: tuple[float, ...]
    search: str
    methods: tuple[str, ...] = PAPER_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    needs_data_root: bool = False
    num_train: int | None = None
    num_evaluated: int | None = None
    epoch_seconds: float | None = None

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(self.heads)

    def spec(
        self,
        task_names: Sequence[str] | None = None,
        *,
        run_changes: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> BenchSpec:
        """The preset as a :class:`BenchSpec`; ``run_changes`` override fields of the run template (e.g. ``epochs``)
        and ``changes`` fields of the spec (e.g. ``lrs``, ``methods``), as explicit CLI flags do.

        Example:
            >>> PRESETS["full"].spec(lrs=[1e-3], run_changes={"epochs": 5}).run.epochs
            5
        """
        values: dict[str, Any] = {
            "task_names": list(task_names if task_names is not None else self.task_names),
            "run": self.run.replace(**dict(run_changes or {})),
            "methods": list(self.methods),
            "seeds": list(self.seeds),
            "lrs": list(self.lrs),
            "temperatures": list(self.temperatures),
            "search": self.search,
        }
        values.update(changes)
        if "methods" not in changes:
            # A method whose grid needs more than the trained tasks allow is left out: Scalarization's simplex of 40
            # CelebA tasks, but not of 3 of them.
            trained = values["run"].tasks or values["task_names"]
            space = SearchSpace(num_tasks=len(trained), temperatures=tuple(values["temperatures"]))
            values["methods"] = [m for m in self.methods if _has_grid(m, space)]
        return BenchSpec(**values)


def _has_grid(method: str, space: SearchSpace) -> bool:
    """Whether the method's grid exists for these tasks: e.g. no simplex point of 40 tasks has every weight ≥ 0.1,
    so the paper's CelebA setup has no Scalarization."""
    try:
        search_grid(method, space)
    except ValueError:
        return False
    return True


def _paper(
    name: str, summary: str, heads: Mapping[str, HeadSpec], input_shape: tuple[int, int, int],
    splits: tuple[int, int, int], **run: Any,
) -> Preset:
    """A setup of the paper: its LR grid, every grid point on every seed, Adam with RunConfig's weight decay 1e-5."""
    temperatures = CITYSCAPES_TEMPERATURES if run["dataset"] == "cityscapes" else PAPER_TEMPERATURES
    return Preset(
        name=name, summary=summary, run=RunConfig(**run), heads=heads, input_shape=input_shape, lrs=PAPER_LRS,
        temperatures=temperatures, search="all_seeds", methods=PAPER_METHODS, needs_data_root=True,
        num_train=splits[0],
        num_evaluated=splits[1] + splits[2],
    )


_MULTIFASHION = {name: task.head for name, task in multifashion_tasks().items()}
_NYUV2 = {name: spec.task.head for name, spec in nyuv2_tasks().items()}
_CITYSCAPES = {name: spec.task.head for name, spec in cityscapes_tasks().items()}
_CELEBA = {name: BinaryAttribute(name).head for name in CELEBA_ATTRIBUTES}
# Train, validation and test samples (the validation split carved from the training files, CelebA's official one)
# and the input sizes: the loaders' documented sizes.
_NYUV2_SPLITS, _CITYSCAPES_SPLITS, _CELEBA_SPLITS = (636, 159, 654), (2380, 595, 500), (162_770, 19_867, 19_962)
_NYUV2_INPUT, _CITYSCAPES_INPUT, _CELEBA_INPUT = (3, 288, 384), (3, 128, 256), (3, CELEBA_SIZE, CELEBA_SIZE)
_MULTIFASHION_INPUT = (1, multifashion.CANVAS, multifashion.CANVAS)
# Evaluation batches of the dense presets: RunConfig's 1024 would put a whole NYUv2 split (654 images at 288×384:
# 18.5 GB per 64-channel activation in float32) through the network at once. The metrics are sums over the split, so
# the batch size does not change them; MTAN-style batch averaging (metric_averaging="batch") uses --eval-batch-size.
_EVAL_BATCH = {"nyuv2": 16, "cityscapes": 128}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="fast",
            summary="embedded MultiFashion, multilenet, 3 epochs, lr 1e-3, grids searched on seed 0 (≤ 15 min, 2 CPUs)",
            run=RunConfig(epochs=3),
            heads=_MULTIFASHION,
            input_shape=_MULTIFASHION_INPUT,
            lrs=(1e-3,),
            temperatures=FAST_TEMPERATURES,
            search="one_seed",
            num_train=10_000,
            num_evaluated=4_000,
            # Measured: one EW epoch of multilenet on MultiFashion, 1 CPU thread (docs/results/reproduction).
            epoch_seconds=5.2,
        ),
        Preset(
            name="full",
            summary="as fast, with an LR grid, the paper's full T grid and every grid point on every seed",
            run=RunConfig(epochs=3),
            heads=_MULTIFASHION,
            input_shape=_MULTIFASHION_INPUT,
            lrs=(1e-4, 5e-4, 1e-3),
            temperatures=PAPER_TEMPERATURES,
            search="all_seeds",
            num_train=10_000,
            num_evaluated=4_000,
            epoch_seconds=5.2,
        ),
        Preset(
            name="reproduction",
            summary="embedded MultiFashion, multilenet, 50 epochs, LR halved at epoch 30, LR grid {1e-4, 1e-3, 1e-2}, "
                    "the paper's T grid, grids searched on seed 0 (the converged study, docs/results/reproduction)",
            # 50 epochs and the decay at 30 come from the convergence measurement in docs/results/reproduction;
            # losses and weights are logged every 10 steps to keep the committed store small.
            run=RunConfig(epochs=50, lr_step=30, log_every=10),
            heads=_MULTIFASHION,
            input_shape=_MULTIFASHION_INPUT,
            lrs=PAPER_LRS,
            temperatures=PAPER_TEMPERATURES,
            search="one_seed",
            num_train=10_000,
            num_evaluated=4_000,
            epoch_seconds=5.2,
        ),
        _paper("nyuv2-segnet", "NYUv2 288×384, SegNet, batch 8, 200 epochs, LR halved every 100", _NYUV2,
               _NYUV2_INPUT, _NYUV2_SPLITS, dataset="nyuv2", model="segnet", batch_size=8, epochs=200, lr_step=100,
               eval_batch_size=_EVAL_BATCH["nyuv2"]),
        _paper("nyuv2-deeplabv3plus", "NYUv2 288×384, DeepLabV3+ (ResNet-50), batch 8, 200 epochs, LR halved every 100",
               _NYUV2, _NYUV2_INPUT, _NYUV2_SPLITS, dataset="nyuv2", model="deeplabv3plus", batch_size=8, epochs=200,
               lr_step=100, eval_batch_size=_EVAL_BATCH["nyuv2"]),
        _paper("cityscapes-segnet", "Cityscapes 128×256, SegNet, batch 64, 300 epochs, LR halved every 100",
               _CITYSCAPES, _CITYSCAPES_INPUT, _CITYSCAPES_SPLITS, dataset="cityscapes", model="segnet", batch_size=64,
               epochs=300, lr_step=100, eval_batch_size=_EVAL_BATCH["cityscapes"]),
        _paper("cityscapes-deeplabv3plus",
               "Cityscapes 128×256, DeepLabV3+ (ResNet-50), batch 64, 300 epochs, LR halved every 100", _CITYSCAPES,
               _CITYSCAPES_INPUT, _CITYSCAPES_SPLITS, dataset="cityscapes", model="deeplabv3plus", batch_size=64,
               epochs=300, lr_step=100, eval_batch_size=_EVAL_BATCH["cityscapes"]),
        _paper("celeba-resnet18", "CelebA 64×64, 40 attributes, ResNet-18, batch 512, 100 epochs, LR halved every 30",
               _CELEBA, _CELEBA_INPUT, _CELEBA_SPLITS, dataset="celeba", model="resnet18", batch_size=512, epochs=100,
               lr_step=30),
    )
}


SUSTAINED_FLOPS_PER_SECOND = 100e12
"""The rate the dry run converts FLOPs to hours at: a round number to scale by, not a measurement (an H200's dense
BF16 peak is about ten times this; convolutional MTL models at these batch sizes reach a fraction of any peak)."""


@dataclass(frozen=True)
class PlanFlops:
    """The compute of a benchmark plan in floating-point operations (:mod:`taskbalance.models.flops`).

    Attributes:
        forward_per_sample: one sample's forward pass through the multi-task model (every trained task's head).
        training: every run's training steps, each method at its own passes per step
            (:meth:`taskbalance.method.Method.step_passes`: a loss weighting 3 forward passes' worth per sample,
            a gradient method in parameters mode also one extra backward through the encoder per task).
        evaluation: every run's forward passes over the validation and the test split after every epoch.
        step_cost: per method, the FLOPs of its training step relative to a loss weighting's (1.0 for most).

    Single-task baselines are counted at their own one-head model's cost; every split at the preset's sizes. What
    a method computes besides passes through the model (a solver, a Gram matrix) is not counted.
    """

    forward_per_sample: int
    training: float
    evaluation: float
    step_cost: Mapping[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.training + self.evaluation


def plan_flops(plan: BenchPlan, spec: BenchSpec, preset: Preset) -> PlanFlops:
    """Count the FLOPs of ``plan`` on the preset's own dataset (its heads and input size, no file read).

    Raises:
        ValueError: the count is not possible (a task the preset does not know, a model that cannot be built
            without data); the message says why.

    Example:
        >>> from taskbalance.protocol.bench import plan
        >>> spec = PRESETS["nyuv2-segnet"].spec()
        >>> flops = plan_flops(plan(spec), spec, PRESETS["nyuv2-segnet"])
        >>> round(flops.forward_per_sample / 1e9)  # GFLOP per 288 × 384 image
        137
    """
    unknown = [task for task in spec.trained_tasks if task not in preset.heads]
    if unknown:
        raise ValueError(f"preset {preset.name} does not know the task(s) {', '.join(unknown)}")
    # The count is the same with any weights, and a dry run reads no file.
    options = {key: value for key, value in spec.run.model_options.items() if key != "pretrained"}

    def forward(tasks: Sequence[str]) -> ForwardFlops:
        heads = {task: preset.heads[task] for task in tasks}
        try:
            return forward_flops(spec.run.model, heads, preset.input_shape, **options)
        except Exception as error:  # a model of any kind may refuse the meta device; the dry run must not crash
            raise ValueError(f"model {spec.run.model!r} could not be traced on the meta device: {error}") from None

    trained = preset.num_train or 0
    if spec.run.max_steps_per_epoch:  # caps the training steps only; evaluation covers whole splits
        trained = min(trained, spec.run.max_steps_per_epoch * spec.run.batch_size)
    multi_task = forward(spec.trained_tasks)
    single_task = [forward([task]) for task in spec.trained_tasks]
    # Per sample and epoch, summed over the runs: a forward pass each (evaluation), a training step each.
    evaluated = plan.stl_runs * sum(f.total for f in single_task) / len(single_task)
    stepped = plan.stl_runs * sum(StepPasses().flops(shared=f.shared, heads=f.heads) for f in single_task) / len(
        single_task)
    loss_weighting_step = StepPasses().flops(shared=multi_task.shared, heads=multi_task.heads)
    step_cost = {}
    for method in plan.methods:
        passes = method_class(method.method).step_passes(len(spec.trained_tasks),
                                                         spec.method_options.get(method.method, {}))
        step = passes.flops(shared=multi_task.shared, heads=multi_task.heads)
        step_cost[method.method] = step / loss_weighting_step
        evaluated += method.runs * multi_task.total
        stepped += method.runs * step
    return PlanFlops(
        forward_per_sample=multi_task.total,
        training=stepped * trained * plan.epochs,
        evaluation=evaluated * (preset.num_evaluated or 0) * plan.epochs,
        step_cost=step_cost,
    )


def format_flops(flops: float) -> str:
    """FLOPs with a decimal prefix and three significant digits.

    Example:
        >>> format_flops(1.372e11), format_flops(5.2e19)
        ('137 GFLOP', '52 EFLOP')
    """
    for prefix, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.3g} {prefix}FLOP"
    return f"{flops:.3g} FLOP"


def describe_plan(
    plan: BenchPlan, preset: Preset, *, workers: int, measured: bool, flops: PlanFlops | str | None = None
) -> list[str]:
    """Lines of ``taskbalance bench --dry-run``: runs per method and phase, then the compute.

    ``measured`` says whether the spec trains what ``preset.epoch_seconds`` was measured on (same dataset, model
    and whole epochs); only then is a wall time estimated. ``flops`` is the plan's FLOP count
    (:func:`plan_flops`), or why there is none.

    Example:
        >>> from taskbalance.protocol.bench import plan
        >>> lines = describe_plan(plan(PRESETS["fast"].spec()), PRESETS["fast"], workers=2, measured=True)
        >>> lines[-2]
        'total: 75 runs (phase 1: 71, phase 2: 4) × 3 epochs = 225 run-epochs, 2,250,000 training samples'
        >>> lines[5]
        'uwso               7 runs (5 configurations = grid points × learning rates; phase 1: 5, phase 2: 2)'
    """
    stl = "STL baselines"
    width = max(len(stl), *(len(m.method) for m in plan.methods))
    lines = [f"preset {preset.name}: {preset.summary}", f"{stl:<{width}} {plan.stl_runs:6d} runs"]
    for method in plan.methods:
        lines.append(
            f"{method.method:<{width}} {method.runs:6d} runs ({method.points} configurations = grid points × "
            f"learning rates; phase 1: {method.phase1_runs}, phase 2: {method.phase2_runs})"
        )
    total = f"total: {plan.runs} runs (phase 1: {plan.phase1_runs}, phase 2: {plan.phase2_runs}) × {plan.epochs} epochs"
    total += f" = {plan.run_epochs:,} run-epochs"
    if preset.num_train is not None:
        total += f", {plan.run_epochs * preset.num_train:,} training samples"
    lines.append(total)
    epoch_seconds = preset.epoch_seconds if measured else None
    if epoch_seconds is not None:
        cpu_hours = plan.run_epochs * epoch_seconds / 3600
        lines.append(
            f"estimate: {cpu_hours:.1f} CPU-thread-hours at the measured {epoch_seconds:g} s per EW epoch; "
            f"≈ {cpu_hours / workers * 60:.0f} min wall with {workers} workers (gradient methods cost more per step)"
        )
    else:
        lines.append("estimate: no measured epoch time for this dataset and model; the compute above is in epochs")
    if isinstance(flops, PlanFlops):
        line = (f"FLOPs: {format_flops(flops.forward_per_sample)} per sample forward; training "
                f"{format_flops(flops.training)} + evaluation (validation and test after every epoch) "
                f"{format_flops(flops.evaluation)} = {format_flops(flops.total)}")
        if epoch_seconds is None:  # a measured wall time says more than a nominal rate
            hours = flops.total / SUSTAINED_FLOPS_PER_SECOND / 3600
            line += f", ≈ {hours:,.1f} h at {SUSTAINED_FLOPS_PER_SECOND / 1e12:g} TFLOP/s sustained"
        lines.append(line)
        dearer = [f"{name} {cost:.2f}×" for name, cost in flops.step_cost.items() if cost != 1.0]
        if dearer:
            lines.append(f"FLOPs of a training step against a loss weighting's: {', '.join(dearer)}")
    elif flops is not None:
        lines.append(f"FLOPs: not counted ({flops})")
    return lines
