"""Nash-MTL's update_weights_every: between solves, one backward gives the full step's gradients for the last α."""

import io

import pytest
import torch
from torch import nn

from taskbalance.aggregation import create
from taskbalance.models.base import MultiTaskModel


def tiny_model() -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel(nn.Sequential(nn.Linear(4, 6), nn.Tanh()), {"a": nn.Linear(6, 1), "b": nn.Linear(6, 1)})


def task_losses(model: MultiTaskModel, seed: int) -> list[torch.Tensor]:
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(seed))
    out = model(x)
    return [out["a"].pow(2).mean() + 0.1, (out["b"] - 1).pow(2).mean() + 0.1]


def explicit_gradients(model: MultiTaskModel, seed: int) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    shared = list(model.shared_parameters())
    losses = task_losses(model, seed)
    by_shared = [list(torch.autograd.grad(loss, shared, retain_graph=True)) for loss in losses]
    by_head = [list(torch.autograd.grad(loss, list(model.heads[n].parameters()), retain_graph=True))
               for loss, n in zip(losses, ["a", "b"], strict=True)]
    return by_shared, by_head


def test_between_solves_the_step_uses_the_last_alpha_with_one_backward() -> None:
    model = tiny_model()
    method = create("nashmtl", num_tasks=2, update_weights_every=2, max_norm=0)
    method.step(task_losses(model, 1), shared_parameters=list(model.shared_parameters()))
    alpha = method.alpha.clone()
    assert not torch.equal(alpha, torch.ones(2))  # solved on the first step

    by_shared, by_head = explicit_gradients(model, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)  # stale values must be replaced, not accumulated
    method.step(task_losses(model, 2), shared_parameters=list(model.shared_parameters()))
    assert torch.equal(method.alpha, alpha)  # not re-solved on the second step
    for i, p in enumerate(model.shared_parameters()):
        torch.testing.assert_close(p.grad, alpha[0] * by_shared[0][i] + alpha[1] * by_shared[1][i])
    for k, name in enumerate(["a", "b"]):
        for p, expected in zip(model.heads[name].parameters(), by_head[k], strict=True):
            torch.testing.assert_close(p.grad, expected)
    torch.testing.assert_close(method.last_weights, alpha)

    method.step(task_losses(model, 3), shared_parameters=list(model.shared_parameters()))
    assert not torch.equal(method.alpha, alpha)  # the third step solves again


def test_the_reused_step_equals_a_full_step_with_the_same_alpha() -> None:
    reused, full = tiny_model(), tiny_model()
    every2 = create("nashmtl", num_tasks=2, update_weights_every=2)
    every2.step(task_losses(reused, 1), shared_parameters=list(reused.shared_parameters()))
    every2.step(task_losses(reused, 2), shared_parameters=list(reused.shared_parameters()))

    reference = create("nashmtl", num_tasks=2)
    reference.coefficients = lambda gram: every2.alpha.clone()  # the full path, forced to the same α
    reference.step(task_losses(full, 2), shared_parameters=list(full.shared_parameters()))
    for p, q in zip(reused.parameters(), full.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)


def test_a_leaf_used_by_two_tasks_outside_the_shared_parameters_forces_a_full_step() -> None:
    model = tiny_model()
    offset = nn.Parameter(torch.tensor(0.3))  # used by both losses, not passed as shared

    def losses(seed: int) -> list[torch.Tensor]:
        a, b = task_losses(model, seed)
        return [a + offset.pow(2), b + offset.pow(2)]

    method = create("nashmtl", num_tasks=2, update_weights_every=2)
    method.step(losses(1), shared_parameters=list(model.shared_parameters()))
    first = method.alpha.clone()
    method.step(losses(2), shared_parameters=list(model.shared_parameters()))
    assert not torch.equal(method.alpha, first)  # solved again instead of reusing α


def test_alpha_and_step_count_survive_a_weights_only_checkpoint() -> None:
    model = tiny_model()
    method = create("nashmtl", num_tasks=2, update_weights_every=3)
    method.step(task_losses(model, 1), shared_parameters=list(model.shared_parameters()))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    resumed = create("nashmtl", num_tasks=2, update_weights_every=3)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.steps == 1 and torch.equal(resumed.alpha, method.alpha)


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_update_weights_every_is_validated(every: object) -> None:
    with pytest.raises(ValueError, match="update_weights_every must be a positive int"):
        create("nashmtl", num_tasks=2, update_weights_every=every)


def test_shared_gradients_are_clipped_to_max_norm_after_full_and_reused_steps() -> None:
    for every in (1, 2):
        clipped_model, free_model = tiny_model(), tiny_model()
        clipped = create("nashmtl", num_tasks=2, update_weights_every=every, max_norm=0.05)
        free = create("nashmtl", num_tasks=2, update_weights_every=every, max_norm=0)
        for seed in (1, 2):  # with every=2 the second step reuses α
            for model, method in ((clipped_model, clipped), (free_model, free)):
                method.step(task_losses(model, seed), shared_parameters=list(model.shared_parameters()))
            unclipped = [p.grad for p in free_model.shared_parameters()]
            norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in unclipped]))
            assert float(norm) > 0.05  # the clip is active
            for p, g in zip(clipped_model.shared_parameters(), unclipped, strict=True):
                torch.testing.assert_close(p.grad, g * 0.05 / norm, rtol=1e-5, atol=1e-7)
            for name in ("a", "b"):  # heads are never clipped
                heads = zip(clipped_model.heads[name].parameters(), free_model.heads[name].parameters(), strict=True)
                for p, q in heads:
                    torch.testing.assert_close(p.grad, q.grad)


@pytest.mark.parametrize("max_norm", [-1.0, float("inf"), float("nan"), "1", True])
def test_max_norm_is_validated(max_norm: object) -> None:
    with pytest.raises(ValueError, match="max_norm must be a finite number >= 0"):
        create("nashmtl", num_tasks=2, max_norm=max_norm)
