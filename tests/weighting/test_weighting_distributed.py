"""sync_across_ranks: two gloo ranks on CPU with different losses get identical weights, those of the mean losses."""

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from taskbalance import distributed
from taskbalance.weighting import DWA, GLS, RLW, UWO, UWSO

RANK_LOSSES = [[0.5, 2.0, 4.0], [1.5, 1.0, 8.0]]
MEAN_LOSSES = [1.0, 1.5, 6.0]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    with distributed.leaving_together():
        losses = torch.tensor(RANK_LOSSES[rank], dtype=torch.float64)
        results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, method in {
            "uwo": UWO(3, sync_across_ranks=True),
            "uwso": UWSO(3, temperature=0.7, sync_across_ranks=True),
            "gls": GLS(3, sync_across_ranks=True),
            "rlw": RLW(3, seed=rank, sync_across_ranks=True),  # different seeds: rank 0's weights must win
        }.items():
            total = method(losses)
            results[name] = (method.last_weights, total.detach())
        dwa = DWA(3, sync_across_ranks=True)
        dwa.end_epoch(losses)
        dwa.end_epoch(losses.flip(0))
        total = dwa(losses)
        results["dwa"] = (dwa.last_weights, total.detach())
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")


def test_every_rank_uses_the_weights_of_the_mean_losses(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    mean = torch.tensor(MEAN_LOSSES, dtype=torch.float64)
    expected = {}
    for name, method in {"uwo": UWO(3), "uwso": UWSO(3, temperature=0.7), "gls": GLS(3)}.items():
        method(mean)
        expected[name] = method.last_weights
    expected["rlw"] = torch.softmax(torch.randn(3, generator=torch.Generator().manual_seed(0)), 0).double()
    # DWA's epoch means are averaged too: epoch 1 mean = MEAN_LOSSES, epoch 2 mean = mean of the flipped losses.
    dwa = DWA(3)
    dwa.end_epoch(mean)
    dwa.end_epoch(mean.flip(0))
    expected["dwa"] = dwa.last_weights  # float32: DWA keeps its history in its buffers' dtype

    for name, weights in expected.items():
        first, second = ranks[0][name][0], ranks[1][name][0]
        assert torch.equal(first, second), name
        torch.testing.assert_close(first, weights, rtol=1e-6, atol=1e-9, msg=name)
        # Each rank still combines its own losses with the shared weights.
        for rank in range(2):
            local = torch.tensor(RANK_LOSSES[rank], dtype=torch.float64)
            torch.testing.assert_close(
                ranks[rank][name][1], (weights * local).sum(), rtol=1e-6, atol=1e-9, check_dtype=False, msg=name
            )
    # Sanity: without syncing the two ranks would disagree.
    a, b = UWO(3), UWO(3)
    a(torch.tensor(RANK_LOSSES[0]))
    b(torch.tensor(RANK_LOSSES[1]))
    assert not torch.equal(a.last_weights, b.last_weights)
