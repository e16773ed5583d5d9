"""A sweep on a local Ray instance, run by the Ray test inside a loopback-only network namespace.

``python ray_driver.py OUT RAY_TEMP_DIR``: three runs of ``fake_runs.sleepy_run`` with two Ray CPUs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fake_runs import sleepy_run

from taskbalance.execution import run_configs
from taskbalance.store import RunStore
from taskbalance.training.config import RunConfig


def ray_configs(out: Path) -> list[RunConfig]:
    options = {"marker_dir": str(out / "markers"), "sleep": 0.1}
    return [RunConfig(tasks=["a", "b"], seed=seed, epochs=2, dataset_options=options) for seed in range(3)]


def main(out: Path, ray_temp_dir: str) -> None:
    (out / "markers").mkdir(parents=True, exist_ok=True)
    with RunStore(out / "results.sqlite") as store:
        run_configs(ray_configs(out), store=store, executor="ray", workers=2, checkpoint_dir=out / "checkpoints",
                    progress=print, run_fn=sleepy_run, ray_init_options={"_temp_dir": ray_temp_dir})


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
