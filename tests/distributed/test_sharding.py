"""The ranks' shares of every training batch together are the single-process batch, in the same epoch order."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from taskbalance import distributed
from taskbalance.training import RunConfig
from taskbalance.training.loop import _training_batches

CPU = torch.device("cpu")


@pytest.mark.parametrize(("size", "batch_size", "ranks"), [(96, 16, 2), (100, 16, 2), (97, 16, 2), (90, 12, 3)])
def test_rank_shares_partition_the_single_process_batches(
    monkeypatch: pytest.MonkeyPatch, size: int, batch_size: int, ranks: int
) -> None:
    dataset = TensorDataset(torch.arange(size))
    config = RunConfig(batch_size=batch_size)
    single = [batch[0].tolist() for batch in _training_batches(dataset, config, seed=7, device=CPU)]
    shares = []
    monkeypatch.setattr(distributed, "world_size", lambda: ranks)
    for rank in range(ranks):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shares.append([batch[0].tolist() for batch in _training_batches(dataset, config, seed=7, device=CPU)])
    steps = len(shares[0])
    assert all(len(share) == steps for share in shares)
    # Every global batch that splits evenly over the ranks is trained, as one process trains it.
    expected = [b for b in single if len(b) % ranks == 0]
    assert steps == len(expected)
    for step, batch in enumerate(expected):
        assert sorted(i for share in shares for i in share[step]) == sorted(batch)
        assert {len(share[step]) for share in shares} == {len(batch) // ranks}
