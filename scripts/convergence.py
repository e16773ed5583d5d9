"""Learning curves of the single-task models and EW on the embedded MultiFashion problem.

How many epochs does ``multilenet`` need on MultiFashion until the validation metrics stop improving? This script
trains one single-task model per task and the equal-weighting (EW) multi-task model with the library's own loop
(:func:`taskbalance.training.train`, Adam, the paper's weight decay 1e-5, a constant learning rate: ``lr_step`` is
set beyond the last epoch so that the curve shows the rate itself, not a schedule) and records every epoch's
validation metrics.

Outputs, in ``--out`` (default ``docs/results/reproduction/``):

* ``convergence.csv``: one row per (run, epoch, metric) with the validation and the test value;
* ``convergence.png``: validation learning curves, one panel per metric, STL and EW per learning rate;
* ``convergence_summary.csv``: per run and metric the best validation epoch and the first epoch within
  ``--tolerance`` (relative) of the best value.

Every epoch is appended to a per-run file under ``--work`` as soon as it finishes, and runs checkpoint there, so an
interrupted measurement started again continues where it stopped; ``--plot-only`` rebuilds the outputs from what
is there.

Usage::

    nice -n 19 python scripts/convergence.py --measure            # one epoch of EW: the epoch time
    nice -n 19 python scripts/convergence.py --epochs 50 --lrs 1e-3,1e-2 --processes 2
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from taskbalance.training import EpochRecord, RunConfig, train

TASKS = ("left", "right", "depth")
METRICS = ("left/accuracy", "right/accuracy", "depth/mae", "depth/rmse")
HIGHER_IS_BETTER = {"left/accuracy": True, "right/accuracy": True, "depth/mae": False, "depth/rmse": False}


@dataclass(frozen=True)
class Curve:
    """One run of the measurement: ``tasks`` empty means the EW model of every task."""

    label: str
    tasks: tuple[str, ...]
    lr: float

    @property
    def name(self) -> str:
        return f"{self.label}-lr{self.lr:g}"

    def config(self, epochs: int, seed: int) -> RunConfig:
        # lr_step beyond the last epoch: a constant rate, so that the curve measures the rate, not a schedule.
        return RunConfig(tasks=list(self.tasks), method="ew", lr=self.lr, epochs=epochs, lr_step=epochs + 1, seed=seed)


def curves(lrs: Sequence[float]) -> list[Curve]:
    """EW first (the slowest run starts first), then one STL run per task, per learning rate."""
    return [
        curve
        for lr in lrs
        for curve in [Curve("ew", (), lr)] + [Curve(f"stl-{task}", (task,), lr) for task in TASKS]
    ]


def _part_path(work: Path, curve: Curve) -> Path:
    return work / f"{curve.name}.jsonl"


def _train_curve(job: tuple[Curve, int, int, str]) -> str:
    curve, epochs, seed, work_dir = job
    torch.set_num_threads(1)
    work = Path(work_dir)
    part = _part_path(work, curve)
    config = curve.config(epochs, seed)

    def record(epoch: EpochRecord) -> None:
        with part.open("a") as handle:
            handle.write(json.dumps({"epoch": epoch.epoch, "val": epoch.val, "test": epoch.test,
                                     "seconds": epoch.seconds}) + "\n")

    if len(_read_part(part)) >= epochs:
        return curve.name
    # A resumed run reports only the epochs after its checkpoint; an epoch written twice keeps its last line.
    train(config, checkpoint_dir=work / "checkpoints", on_epoch=record)
    return curve.name


def _read_part(part: Path) -> list[dict]:
    if not part.exists():
        return []
    records: dict[int, dict] = {}
    for line in part.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            records[row["epoch"]] = row
    return [records[e] for e in sorted(records)]


def measure_epoch(seed: int) -> None:
    """Print the wall time of one EW epoch and one STL epoch (evaluation of the splits included)."""
    torch.set_num_threads(1)
    for curve in (Curve("ew", (), 1e-3), Curve("stl-left", ("left",), 1e-3)):
        started = time.perf_counter()
        result = train(curve.config(1, seed))
        print(f"{curve.label}: one epoch {result.epochs[0].seconds:.1f} s (run {time.perf_counter() - started:.1f} s)")


def first_within(values: Sequence[float], higher_is_better: bool, tolerance: float) -> tuple[int, int]:
    """(best epoch, first epoch within ``tolerance`` relative to the best value), both 1-based.

    Example:
        >>> first_within([0.5, 0.7, 0.79, 0.8, 0.795], True, 0.02)
        (4, 3)
    """
    best_index = max(range(len(values)), key=lambda i: values[i] if higher_is_better else -values[i])
    best = values[best_index]
    for index, value in enumerate(values):
        gap = (best - value) if higher_is_better else (value - best)
        if gap <= tolerance * abs(best):
            return best_index + 1, index + 1
    return best_index + 1, best_index + 1  # pragma: no cover - the best itself is always within


def write_outputs(all_curves: Sequence[Curve], work: Path, out: Path, tolerance: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    series: dict[Curve, list[dict]] = {c: _read_part(_part_path(work, c)) for c in all_curves}
    series = {c: rows for c, rows in series.items() if rows}
    with (out / "convergence.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "lr", "epoch", "metric", "val", "test", "epoch_seconds"])
        for curve, rows in series.items():
            for row in rows:
                for metric, value in row["val"].items():
                    writer.writerow([curve.label, curve.lr, row["epoch"], metric, f"{value:.6g}",
                                     f"{row['test'][metric]:.6g}", f"{row['seconds']:.2f}"])
    with (out / "convergence_summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "lr", "epochs_run", "metric", "best_val", "best_epoch",
                         f"first_epoch_within_{tolerance:g}", "mean_epoch_seconds"])
        for curve, rows in series.items():
            seconds = sum(r["seconds"] for r in rows) / len(rows)
            for metric in rows[0]["val"]:
                values = [r["val"][metric] for r in rows]
                best_epoch, within = first_within(values, HIGHER_IS_BETTER[metric], tolerance)
                writer.writerow([curve.label, curve.lr, len(rows), metric, f"{values[best_epoch - 1]:.6g}",
                                 best_epoch, within, f"{seconds:.2f}"])
    _plot(series, out / "convergence.png")


def _plot(series: dict[Curve, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = sorted({c.lr for c in series})
    styles = ["-", "--", ":", "-."]
    figure, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6))
    for axis, metric in zip(axes, METRICS, strict=True):
        task = metric.split("/")[0]
        for curve, rows in series.items():
            if metric not in rows[0]["val"] or (curve.tasks and curve.tasks != (task,)):
                continue
            style = styles[lrs.index(curve.lr) % len(styles)]
            color = "C0" if curve.label == "ew" else "C1"
            axis.plot([r["epoch"] for r in rows], [r["val"][metric] for r in rows], style, color=color,
                      label=f"{'EW' if curve.label == 'ew' else 'STL'} lr {curve.lr:g}")
        axis.set_title(f"{metric} ({'↑' if HIGHER_IS_BETTER[metric] else '↓'}), validation")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("MultiFashion, multilenet, Adam (constant rate): validation learning curves")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lrs", default="1e-3", help="comma-separated learning rates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.01, help="relative gap to the best value (summary)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/reproduction"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/taskbalance-convergence"))
    parser.add_argument("--measure", action="store_true", help="only time one epoch")
    parser.add_argument("--plot-only", action="store_true", help="only rebuild the outputs from --work")
    args = parser.parse_args()
    if args.measure:
        measure_epoch(args.seed)
        return
    lrs = [float(v) for v in args.lrs.split(",") if v.strip()]
    all_curves = curves(lrs)
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        jobs = [(c, args.epochs, args.seed, str(args.work)) for c in all_curves]
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            for name in pool.imap_unordered(_train_curve, jobs):
                print(f"finished {name} after {(time.perf_counter() - started) / 60:.1f} min", flush=True)
                write_outputs(all_curves, args.work, args.out, args.tolerance)
    write_outputs(all_curves, args.work, args.out, args.tolerance)


if __name__ == "__main__":
    main()
