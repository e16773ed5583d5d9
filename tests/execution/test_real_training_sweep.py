"""A sweep that calls the real training loop: its results survive the store exactly and are not trained twice."""

from __future__ import annotations

from pathlib import Path

from real_training import train_tiny

from taskbalance.execution import run_configs
from taskbalance.store import RunStore
from taskbalance.training import RunConfig, RunResult


def test_real_runs_are_stored_exactly_and_skipped_when_run_again(tmp_path: Path) -> None:
    base = RunConfig(dataset="exec_test_synthetic", model="exec_test_mlp", epochs=2, batch_size=16, lr=1e-2)
    configs = [base.replace(method="ew"), base.replace(method="uwso", method_options={"temperature": 2.0})]
    calls: list[str] = []

    def counting_train(config: RunConfig, **options: object) -> RunResult:
        calls.append(config.method)
        return train_tiny(config, **options)

    with RunStore(tmp_path / "r.sqlite") as store:
        results = run_configs(configs, store=store, workers=1, checkpoint_dir=tmp_path / "ckpt",
                              progress=lambda _: None, run_fn=counting_train)
        for config in configs:
            result = results[config.run_id()]
            assert store.get(config.run_id()) == result  # every float, list and mapping round-trips exactly
            assert [r.epoch for r in result.epochs] == [1, 2] and len(result.steps) == 2 * 4  # 64 samples / 16
        again = run_configs(configs, store=store, workers=1, progress=lambda _: None, run_fn=counting_train)
    assert calls == ["ew", "uwso"] and again == results
    assert not list((tmp_path / "ckpt").iterdir())  # train removes a finished run's checkpoint


def test_a_real_run_in_the_driver_and_in_a_pool_worker_gives_bit_identical_results(tmp_path: Path) -> None:
    import torch

    config = RunConfig(dataset="exec_test_synthetic", model="exec_test_mlp", epochs=2, batch_size=16, lr=1e-2,
                       method="uwso", method_options={"temperature": 2.0})
    other = config.replace(seed=1)  # a second run, so that the pool really starts two workers
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # the driver's default thread count on this machine
    try:
        with RunStore(tmp_path / "driver.sqlite") as store:
            in_driver = run_configs([config], store=store, workers=1, progress=lambda _: None, run_fn=train_tiny)
    finally:
        torch.set_num_threads(previous)
    with RunStore(tmp_path / "pool.sqlite") as store:
        in_pool = run_configs([config, other], store=store, workers=2, progress=lambda _: None, run_fn=train_tiny)
    driver_run, pool_run = in_driver[config.run_id()], in_pool[config.run_id()]
    assert [(r.val, r.test, r.train_losses) for r in driver_run.epochs] == [
        (r.val, r.test, r.train_losses) for r in pool_run.epochs
    ]
    assert driver_run.step_weights == pool_run.step_weights and driver_run.step_losses == pool_run.step_losses
