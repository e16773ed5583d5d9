"""A sweep as its own process, for the kill-and-resume tests.

``python sweep_driver.py OUT N_RUNS EPOCHS SLEEP [WORKERS [thread_sensitive]]`` (2 workers by default). The driver
sets torch to 3 threads, as a driver on a machine with more cores would have by default.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fake_runs import sleepy_run

from taskbalance.execution import run_configs
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig


def sweep_configs(out: Path, runs: int, epochs: int, sleep: float, thread_sensitive: bool = False) -> list[RunConfig]:
    options: dict[str, object] = {"marker_dir": str(out / "markers"), "sleep": sleep}
    if thread_sensitive:
        options["thread_sensitive"] = True
    return [RunConfig(tasks=["a", "b"], seed=seed, epochs=epochs, dataset_options=options) for seed in range(runs)]


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(3)
    out, runs, epochs, sleep = Path(argv[0]), int(argv[1]), int(argv[2]), float(argv[3])
    workers = int(argv[4]) if len(argv) > 4 else 2
    thread_sensitive = len(argv) > 5 and argv[5] == "thread_sensitive"
    (out / "markers").mkdir(parents=True, exist_ok=True)
    with RunStore(out / "results.sqlite") as store:
        run_configs(sweep_configs(out, runs, epochs, sleep, thread_sensitive), store=store, workers=workers,
                    checkpoint_dir=out / "checkpoints", progress=print, run_fn=sleepy_run)


if __name__ == "__main__":
    main(sys.argv[1:])
