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
  ``--tolerance`` (relative) of the best value; for EW also its validation Δm against the best STL values of the
  same learning rate (``delta_m`` rows; "within" there means within 1 Δm point of EW's best).

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from taskbalance.protocol.delta_m import delta_m
from taskbalance.training import EpochRecord, RunConfig, train

TASKS = ("left", "right", "depth")
METRICS = ("left/accuracy", "right/accuracy", "depth/mae", "depth/rmse")
HIGHER_IS_BETTER = {"left/accuracy": True, "right/accuracy": True, "depth/mae": False, "depth/rmse": False}
DELTA_M_TOLERANCE = 1.0  # Δm points: about the seed-to-seed spread of the committed 3-epoch benchmark


@dataclass(frozen=True)
class Curve:
    """One run of the measurement: ``tasks`` empty means the EW model of every task."""

    label: str
    tasks: tuple[str, ...]
    lr: float
    lr_step: int = 0  # epochs between halvings of the rate; 0: a constant rate

    @property
    def name(self) -> str:
        return f"{self.label}-lr{self.lr:g}" + (f"-step{self.lr_step}" if self.lr_step else "")

    def config(self, epochs: int, seed: int, dataset_options: dict | None = None) -> RunConfig:
        # A constant rate has its step beyond the last epoch, so that the curve measures the rate, not a schedule.
        return RunConfig(tasks=list(self.tasks), method="ew", lr=self.lr, epochs=epochs, seed=seed,
                         lr_step=self.lr_step or epochs + 1, lr_gamma=0.5, dataset_options=dict(dataset_options or {}))


def curves(lrs: Sequence[float], lr_step: int = 0) -> list[Curve]:
    """EW first (the slowest run starts first), then one STL run per task, per learning rate."""
    return [
        curve
        for lr in lrs
        for curve in [Curve("ew", (), lr, lr_step)] + [Curve(f"stl-{task}", (task,), lr, lr_step) for task in TASKS]
    ]


def _part_path(work: Path, curve: Curve) -> Path:
    return work / f"{curve.name}.jsonl"


def _train_curve(job: tuple[Curve, int, int, str, dict]) -> str:
    curve, epochs, seed, work_dir, dataset_options = job
    torch.set_num_threads(1)
    work = Path(work_dir)
    part = _part_path(work, curve)
    config = curve.config(epochs, seed, dataset_options)

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


def first_within(
    values: Sequence[float], higher_is_better: bool, tolerance: float, absolute: float = 0.0
) -> tuple[int, int]:
    """(best epoch, first epoch within ``tolerance`` relative to — or ``absolute`` of — the best value), 1-based.

    Example:
        >>> first_within([0.5, 0.7, 0.79, 0.8, 0.795], True, 0.02)
        (4, 3)
        >>> first_within([9.0, 3.0, 1.5, 1.0, 2.0], False, 0.0, absolute=1.0)
        (4, 3)
    """
    best_index = max(range(len(values)), key=lambda i: values[i] if higher_is_better else -values[i])
    best = values[best_index]
    for index, value in enumerate(values):
        gap = (best - value) if higher_is_better else (value - best)
        if gap <= tolerance * abs(best) + absolute:
            return best_index + 1, index + 1
    return best_index + 1, best_index + 1  # pragma: no cover - the best itself is always within


def write_outputs(
    all_curves: Sequence[Curve], work: Path, out: Path, tolerance: float, prefix: str = "convergence"
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    series: dict[Curve, list[dict]] = {c: _read_part(_part_path(work, c)) for c in all_curves}
    series = {c: rows for c, rows in series.items() if rows}
    with (out / f"{prefix}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "lr", "epoch", "metric", "val", "test", "epoch_seconds"])
        for curve, rows in series.items():
            for row in rows:
                for metric, value in row["val"].items():
                    writer.writerow([curve.label, curve.lr, row["epoch"], metric, f"{value:.6g}",
                                     f"{row['test'][metric]:.6g}", f"{row['seconds']:.2f}"])
    with (out / f"{prefix}_summary.csv").open("w", newline="") as handle:
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
        for curve, dm in ew_delta_m(series).items():
            best_epoch, within = first_within(dm, False, 0.0, absolute=DELTA_M_TOLERANCE)
            writer.writerow([curve.label, curve.lr, len(dm), "delta_m", f"{dm[best_epoch - 1]:.4g}", best_epoch,
                             within, ""])
    _plot(series, out / f"{prefix}.png")


def ew_delta_m(series: dict[Curve, list[dict]]) -> dict[Curve, list[float]]:
    """Per EW run, its validation Δm per epoch against the best validation value each STL run of the same learning
    rate reached (over all its epochs): the quantity the protocol selects epochs by."""
    curves_by_lr: dict[float, dict[str, list[dict]]] = {}
    for curve, rows in series.items():
        curves_by_lr.setdefault(curve.lr, {})[curve.label] = rows
    result: dict[Curve, list[float]] = {}
    for curve, rows in series.items():
        stl = curves_by_lr[curve.lr]
        if curve.label != "ew" or not all(f"stl-{task}" in stl for task in TASKS):
            continue
        baseline = {}
        for metric in METRICS:
            values = [r["val"][metric] for r in stl[f"stl-{metric.split('/')[0]}"]]
            baseline[metric] = max(values) if HIGHER_IS_BETTER[metric] else min(values)
        result[curve] = [delta_m(r["val"], baseline, HIGHER_IS_BETTER) for r in rows]
    return result


def _plot(series: dict[Curve, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = sorted({c.lr for c in series})
    styles = ["-", "--", ":", "-."]
    figure, axes = plt.subplots(1, len(METRICS) + 1, figsize=(4.2 * (len(METRICS) + 1), 3.6))
    for axis, metric in zip(axes, METRICS, strict=False):
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
    dm_axis = axes[-1]
    later: list[float] = []  # the first epochs' Δm (≈100 %) would flatten the rest of the curve
    for curve, dm in ew_delta_m(series).items():
        dm_axis.plot(range(1, len(dm) + 1), dm, styles[lrs.index(curve.lr) % len(styles)], color="C2",
                     label=f"EW lr {curve.lr:g}")
        later += dm[3:]
    if later:
        dm_axis.set_ylim(min(0.0, min(later)) - 2, max(later) + 5)
    dm_axis.axhline(0.0, color="black", linewidth=0.8)
    dm_axis.set_title("EW validation Δm % (↓) vs best STL")
    dm_axis.set_xlabel("epoch")
    dm_axis.grid(alpha=0.3)
    if later or any(line.get_label().startswith("EW") for line in dm_axis.lines):
        dm_axis.legend(fontsize=8)
    steps = {c.lr_step for c in series}
    schedule = "constant rate" if steps == {0} else f"rate halved every {', '.join(str(s) for s in steps)} epochs"
    figure.suptitle(f"MultiFashion, multilenet, Adam ({schedule}): validation learning curves")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lrs", default="1e-3", help="comma-separated learning rates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.01, help="relative gap to the best value (summary)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/reproduction"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/taskbalance-convergence"))
    parser.add_argument("--num-train", type=int, default=None, help="training samples (default: the dataset's)")
    parser.add_argument("--num-eval", type=int, default=None,
                        help="validation and test samples each (default: the dataset's)")
    parser.add_argument("--lr-step", type=int, default=0, help="halve the rate every N epochs (0: constant)")
    parser.add_argument("--prefix", default="convergence", help="name of the output files")
    parser.add_argument("--measure", action="store_true", help="only time one epoch")
    parser.add_argument("--plot-only", action="store_true", help="only rebuild the outputs from --work")
    args = parser.parse_args(argv)
    if args.measure:
        measure_epoch(args.seed)
        return
    lrs = [float(v) for v in args.lrs.split(",") if v.strip()]
    all_curves = curves(lrs, args.lr_step)
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        options = {} if args.num_train is None else {"num_train": args.num_train}
        if args.num_eval is not None:
            options.update(num_val=args.num_eval, num_test=args.num_eval)
        jobs = [(c, args.epochs, args.seed, str(args.work), options) for c in all_curves]
        started = time.perf_counter()

        def report(finished: Iterable[str]) -> None:
            for name in finished:
                print(f"finished {name} after {(time.perf_counter() - started) / 60:.1f} min", flush=True)
                write_outputs(all_curves, args.work, args.out, args.tolerance, args.prefix)

        if args.processes == 1:
            report(map(_train_curve, jobs))
        else:
            with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
                report(pool.imap_unordered(_train_curve, jobs))
    write_outputs(all_curves, args.work, args.out, args.tolerance, args.prefix)


if __name__ == "__main__":
    main()
