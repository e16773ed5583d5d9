"""The outcome of a benchmark: per method, the selected configuration and its test Δm over seeds.

Plain data (JSON round-trip), produced by :mod:`taskbalance.protocol` and consumed by the store and the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GridPoint:
    """One point of a method's search grid, evaluated on the validation split.

    Attributes:
        options: the method's hyper-parameters at this point (e.g. ``{"temperature": 5.0}``).
        lr: learning rate.
        val_delta_m: validation Δm (vs. the STL baseline) at each seed's selected epoch, averaged over the seeds run.
        run_ids: the runs behind the point.
    """

    options: dict[str, Any]
    lr: float
    val_delta_m: float
    run_ids: list[str]


@dataclass
class MethodSummary:
    """A method's result in the benchmark.

    Attributes:
        method: registry name (``"uwso"``).
        label: display name (``"UW-SO"``).
        selected: the selected grid point (its options and lr).
        delta_m_mean, delta_m_std: test Δm over seeds at the selected point (std with ddof=0; 0 for one seed).
        delta_m_per_seed: test Δm of every seed.
        metrics_mean, metrics_std: test ``"task/metric"`` values over seeds.
        rank: 1 = lowest Δm mean.
        runs: training runs spent on the method (grid search and seeds).
        cpu_seconds: CPU seconds spent on those runs.
        grid: every evaluated grid point.
        seed_run_ids: the runs behind the reported numbers (one per seed that finished).
        failed_run_ids: the selected point's runs that failed; when none of them finished (the method failed), every
            failed run of the method. Δm is then NaN and ``delta_m_per_seed`` empty.
        delta_m_seeds: the seed of each entry of ``delta_m_per_seed`` (empty in summaries written before it was
            recorded).
        gpu_seconds: wall seconds of the method's runs that trained on an accelerator (``cuda``, ``mps``). Their
            ``cpu_seconds`` count only the host process, so this is their compute; 0 when every run trained on the
            CPU.
    """

    method: str
    label: str
    selected: GridPoint
    delta_m_mean: float
    delta_m_std: float
    delta_m_per_seed: list[float]
    metrics_mean: dict[str, float]
    metrics_std: dict[str, float]
    rank: int
    runs: int
    cpu_seconds: float
    grid: list[GridPoint] = field(default_factory=list)
    seed_run_ids: list[str] = field(default_factory=list)
    failed_run_ids: list[str] = field(default_factory=list)
    delta_m_seeds: list[int] = field(default_factory=list)
    gpu_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """No run of the selected point finished: the method has no result."""
        return not self.delta_m_per_seed and bool(self.failed_run_ids)


@dataclass
class BenchSummary:
    """Everything the report needs from one benchmark.

    Attributes:
        dataset, model: registry names.
        tasks: task names in order.
        metric_keys: every ``"task/metric"`` of the tasks, in order (Δm covers those not in ``excluded_metrics``).
        higher_is_better: direction per metric key.
        delta_m_variant: ``"all_metrics"`` (the paper's Δm) or ``"per_task"``.
        baseline_val, baseline_test: STL metrics (mean over seeds at each seed's selected epoch).
        methods: one summary per method (the STL baselines are not methods), in rank order; failed methods last.
        seeds: the seeds reported.
        notes: how the grid was searched (e.g. "grids searched on seed 0, selected point run on seeds 0,1,2").
        wall_seconds: wall time of the benchmark.
        excluded_metrics: metric → why Δm leaves it out (no STL baseline, or a baseline of 0: the relative change
            is undefined).
    """

    dataset: str
    model: str
    tasks: list[str]
    metric_keys: list[str]
    higher_is_better: dict[str, bool]
    delta_m_variant: str
    baseline_val: dict[str, float]
    baseline_test: dict[str, float]
    methods: list[MethodSummary]
    seeds: list[int]
    notes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    excluded_metrics: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchSummary:
        values = dict(data)
        methods = []
        for m in values["methods"]:
            m = dict(m)
            m["selected"] = GridPoint(**m["selected"])
            m["grid"] = [GridPoint(**g) for g in m.get("grid", [])]
            methods.append(MethodSummary(**m))
        values["methods"] = methods
        return cls(**values)
