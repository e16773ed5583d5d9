"""A sweep as its own process, for the kill-and-resume test: ``python sweep_driver.py OUT N_RUNS EPOCHS SLEEP``."""

from __future__ import annotations

import sys
from pathlib import Path

from fake_runs import sleepy_run

from taskbalance.execution import run_configs
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig


def sweep_configs(out: Path, runs: int, epochs: int, sleep: float) -> list[RunConfig]:
    options = {"marker_dir": str(out / "markers"), "sleep": sleep}
    return [RunConfig(tasks=["a", "b"], seed=seed, epochs=epochs, dataset_options=options) for seed in range(runs)]


def main(argv: list[str]) -> None:
    out, runs, epochs, sleep = Path(argv[0]), int(argv[1]), int(argv[2]), float(argv[3])
    (out / "markers").mkdir(parents=True, exist_ok=True)
    with RunStore(out / "results.sqlite") as store:
        run_configs(sweep_configs(out, runs, epochs, sleep), store=store, workers=2,
                    checkpoint_dir=out / "checkpoints", progress=print, run_fn=sleepy_run)


if __name__ == "__main__":
    main(sys.argv[1:])
