"""DB-MTL's EMA gradients survive a state_dict round trip (checkpoint resume is exact)."""

import io

import torch

from taskbalance.aggregation import create


def test_ema_gradients_round_trip_through_a_weights_only_checkpoint() -> None:
    generator = torch.Generator().manual_seed(0)
    steps = [[torch.randn(2, 5, generator=generator)] for _ in range(3)]
    scales = torch.tensor([1.0, 0.5])

    uninterrupted = create("dbmtl", num_tasks=2)
    for pieces in steps:
        expected, _ = uninterrupted.aggregate(pieces, scales)

    first = create("dbmtl", num_tasks=2)
    for pieces in steps[:2]:
        first.aggregate(pieces, scales)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = create("dbmtl", num_tasks=2)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.steps == 2
    (direction,), _ = resumed.aggregate(steps[2], scales)
    torch.testing.assert_close(direction, expected[0])
