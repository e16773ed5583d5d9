"""``train_data_parallel``: one run on two spawned gloo processes equals the single-process run."""

from __future__ import annotations

import torch

from taskbalance.training import RunConfig, train
from taskbalance.training.data_parallel import train_data_parallel


def test_two_processes_give_the_single_process_result() -> None:
    config = RunConfig(
        method="cagrad", method_options={"mode": "representation"}, epochs=2, batch_size=32, eval_batch_size=64,
        lr=0.01, dataset_options={"num_train": 128, "num_val": 32, "num_test": 32},
    )
    parallel = train_data_parallel(config, processes=2)
    single = train(config)
    assert parallel.run_id == single.run_id
    for a, b in zip(parallel.epochs, single.epochs, strict=True):
        for key in a.val:
            torch.testing.assert_close(a.val[key], b.val[key], rtol=1e-4, atol=1e-5, msg=key)
    torch.testing.assert_close(torch.tensor(parallel.step_weights), torch.tensor(single.step_weights), rtol=1e-4,
                               atol=1e-6)
