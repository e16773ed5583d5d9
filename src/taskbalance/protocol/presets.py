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
from dataclasses import dataclass
from typing import Any

from taskbalance.data.celeba_files import CELEBA_ATTRIBUTES
from taskbalance.data.cityscapes import cityscapes_tasks
from taskbalance.data.multifashion import TASK_NAMES as MULTIFASHION_TASKS
from taskbalance.data.nyuv2 import nyuv2_tasks
from taskbalance.protocol.bench import PAPER_METHODS, BenchPlan, BenchSpec, search_grid
from taskbalance.protocol.grid import PAPER_TEMPERATURES
from taskbalance.training.config import RunConfig
from taskbalance.types import SearchSpace

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
        task_names: the dataset's tasks in order, known without reading its files (for ``--dry-run``).
        lrs: learning-rate grid.
        temperatures: UW-SO's temperature grid.
        search: ``"one_seed"`` or ``"all_seeds"``.
        methods: the methods compared.
        seeds: the reported seeds.
        needs_data_root: the dataset is read from files named by ``--data-root``.
        num_train: training samples per epoch (for the compute estimate of the dry run).
        epoch_seconds: measured wall seconds of one EW epoch on one CPU thread, evaluation included, or None where
            taskbalance has no measurement (the dry run then gives the compute in epochs and samples only).
    """

    name: str
    summary: str
    run: RunConfig
    task_names: tuple[str, ...]
    lrs: tuple[float, ...]
    temperatures: tuple[float, ...]
    search: str
    methods: tuple[str, ...] = PAPER_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    needs_data_root: bool = False
    num_train: int | None = None
    epoch_seconds: float | None = None

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
        return BenchSpec(**values)


def _has_grid(method: str, space: SearchSpace) -> bool:
    """Whether the method's grid exists for these tasks: e.g. no simplex point of 40 tasks has every weight ≥ 0.1,
    so the paper's CelebA setup has no Scalarization."""
    try:
        search_grid(method, space)
    except ValueError:
        return False
    return True


def _paper(name: str, summary: str, tasks: Sequence[str], num_train: int, **run: Any) -> Preset:
    """A setup of the paper: its LR grid, every grid point on every seed, Adam with RunConfig's weight decay 1e-5."""
    temperatures = CITYSCAPES_TEMPERATURES if run["dataset"] == "cityscapes" else PAPER_TEMPERATURES
    space = SearchSpace(num_tasks=len(tasks), temperatures=temperatures)
    methods = tuple(m for m in PAPER_METHODS if _has_grid(m, space))
    return Preset(
        name=name, summary=summary, run=RunConfig(**run), task_names=tuple(tasks), lrs=PAPER_LRS,
        temperatures=temperatures, search="all_seeds", methods=methods, needs_data_root=True, num_train=num_train,
    )


_NYUV2 = tuple(nyuv2_tasks())
_CITYSCAPES = tuple(cityscapes_tasks())
# Training samples after the validation split is carved out (the loaders' documented split sizes).
_NYUV2_TRAIN, _CITYSCAPES_TRAIN, _CELEBA_TRAIN = 636, 2380, 162_770

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="fast",
            summary="embedded MultiFashion, multilenet, 3 epochs, lr 1e-3, grids searched on seed 0 (≤ 15 min, 2 CPUs)",
            run=RunConfig(epochs=3),
            task_names=MULTIFASHION_TASKS,
            lrs=(1e-3,),
            temperatures=FAST_TEMPERATURES,
            search="one_seed",
            num_train=10_000,
            # Measured: one EW epoch of multilenet on MultiFashion, 1 CPU thread (docs/results/reproduction).
            epoch_seconds=5.2,
        ),
        Preset(
            name="full",
            summary="as fast, with an LR grid, the paper's full T grid and every grid point on every seed",
            run=RunConfig(epochs=3),
            task_names=MULTIFASHION_TASKS,
            lrs=(1e-4, 5e-4, 1e-3),
            temperatures=PAPER_TEMPERATURES,
            search="all_seeds",
            num_train=10_000,
            epoch_seconds=5.2,
        ),
        Preset(
            name="reproduction",
            summary="embedded MultiFashion, multilenet, 50 epochs, LR halved at epoch 30, LR grid {1e-4, 1e-3, 1e-2}, "
                    "the paper's T grid, grids searched on seed 0 (the converged study, docs/results/reproduction)",
            # 50 epochs and the decay at 30 come from the convergence measurement in docs/results/reproduction;
            # losses and weights are logged every 10 steps to keep the committed store small.
            run=RunConfig(epochs=50, lr_step=30, log_every=10),
            task_names=MULTIFASHION_TASKS,
            lrs=PAPER_LRS,
            temperatures=PAPER_TEMPERATURES,
            search="one_seed",
            num_train=10_000,
            epoch_seconds=5.2,
        ),
        _paper("nyuv2-segnet", "NYUv2 288×384, SegNet, batch 8, 200 epochs, LR halved every 100", _NYUV2,
               _NYUV2_TRAIN, dataset="nyuv2", model="segnet", batch_size=8, epochs=200, lr_step=100),
        _paper("nyuv2-deeplabv3plus", "NYUv2 288×384, DeepLabV3+ (ResNet-50), batch 8, 200 epochs, LR halved every 100",
               _NYUV2, _NYUV2_TRAIN, dataset="nyuv2", model="deeplabv3plus", batch_size=8, epochs=200, lr_step=100),
        _paper("cityscapes-segnet", "Cityscapes 128×256, SegNet, batch 64, 300 epochs, LR halved every 100",
               _CITYSCAPES, _CITYSCAPES_TRAIN, dataset="cityscapes", model="segnet", batch_size=64, epochs=300,
               lr_step=100),
        _paper("cityscapes-deeplabv3plus",
               "Cityscapes 128×256, DeepLabV3+ (ResNet-50), batch 64, 300 epochs, LR halved every 100", _CITYSCAPES,
               _CITYSCAPES_TRAIN, dataset="cityscapes", model="deeplabv3plus", batch_size=64, epochs=300, lr_step=100),
        _paper("celeba-resnet18", "CelebA 64×64, 40 attributes, ResNet-18, batch 512, 100 epochs, LR halved every 30",
               CELEBA_ATTRIBUTES, _CELEBA_TRAIN, dataset="celeba", model="resnet18", batch_size=512, epochs=100,
               lr_step=30),
    )
}


# Set per run by the protocol, so not part of what a template fixes.
_PER_RUN_FIELDS = ("tasks", "method", "method_options", "lr", "seed")


def template_line(run: RunConfig) -> str:
    """The fields a run template sets away from RunConfig's defaults (those the protocol sets per run left out).

    Example:
        >>> template_line(PRESETS["nyuv2-segnet"].run)
        'every run: dataset=nyuv2, model=segnet, epochs=200, batch_size=8 (other fields: RunConfig defaults)'
    """
    defaults = RunConfig().to_dict()
    changed = [f"{k}={v}" for k, v in run.to_dict().items() if k not in _PER_RUN_FIELDS and v != defaults[k]]
    return f"every run: {', '.join(changed) or 'RunConfig defaults'} (other fields: RunConfig defaults)"


def describe_plan(plan: BenchPlan, preset: Preset, *, workers: int, measured: bool) -> list[str]:
    """Lines of ``taskbalance bench --dry-run``: runs per method and phase, then the compute.

    ``measured`` says whether the spec trains what ``preset.epoch_seconds`` was measured on (same dataset, model
    and whole epochs); only then is a wall time estimated.

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
    if measured and preset.epoch_seconds is not None:
        cpu_hours = plan.run_epochs * preset.epoch_seconds / 3600
        lines.append(
            f"estimate: {cpu_hours:.1f} CPU-thread-hours at the measured {preset.epoch_seconds:g} s per EW epoch; "
            f"≈ {cpu_hours / workers * 60:.0f} min wall with {workers} workers (gradient methods cost more per step)"
        )
    else:
        lines.append("estimate: no measured epoch time for this dataset and model; the compute above is in epochs")
    return lines
