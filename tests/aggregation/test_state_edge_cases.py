"""State of the stateful gradient methods on skipped fp16 steps, caught errors and degenerate inputs.

The rules tested here: a step the GradScaler skips moves no method's state, a call that raises leaves the state as
it was, and a degenerate input either raises (``validate``) or leaves no NaN behind in the state.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from taskbalance.aggregation import DBMTL, GradVac, MoCo, NashMTL
from taskbalance.aggregation.excessmtl import ExcessMTL


def tiny_problem(*, constant_second_task: bool = False) -> tuple[nn.Linear, Callable[[], list[Tensor]]]:
    """An encoder and a function giving its two task losses (the pattern of the fp16 tests)."""
    torch.manual_seed(0)
    encoder, heads = nn.Linear(4, 5), nn.ModuleList([nn.Linear(5, 1), nn.Linear(5, 1)])
    inputs = torch.randn(6, 4)

    def losses() -> list[Tensor]:
        rep = encoder(inputs)
        second = heads[1](rep.detach() if constant_second_task else rep)
        return [(heads[0](rep) - 1).pow(2).mean(), second.abs().mean() + 0.1]

    return encoder, losses


def flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.flatten() for t in tensors])


# ------------------------------------------------------------------------------------------------ Nash-MTL
def test_nashmtl_a_solve_step_the_scaler_skips_does_not_count() -> None:
    encoder, losses = tiny_problem()
    method = NashMTL(2, update_weights_every=3, max_norm=0)
    # 1e39 × a float32 loss is inf: the scaled backward overflows, the step returns before the solver.
    method.step(losses(), shared_parameters=encoder.parameters(), loss_scale=1e39)
    assert torch.isinf(encoder.weight.grad).all()  # so that the GradScaler skips this step
    assert method.steps == 0 and torch.equal(method.alpha, torch.ones(2))

    method.step(losses(), shared_parameters=encoder.parameters())  # solves instead of reusing α = 1
    reference = NashMTL(2, max_norm=0)
    reference.step(losses(), shared_parameters=encoder.parameters())
    assert method.steps == 1
    assert not torch.equal(method.alpha, torch.ones(2))
    torch.testing.assert_close(method.alpha, reference.alpha)


def test_nashmtl_a_solve_step_that_raises_does_not_count() -> None:
    encoder, losses = tiny_problem(constant_second_task=True)  # task 1 has a zero shared gradient
    method = NashMTL(2, update_weights_every=3)
    with pytest.raises(ValueError, match=r"NashMTL: the gradient of task 1 is zero"):
        method.step(losses(), shared_parameters=encoder.parameters())
    assert method.steps == 0  # the next step solves again


@pytest.mark.parametrize(
    ("jacobian", "message"),
    [
        ([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], r"relative residual 1\.\d+\)"),  # α runs off along the null space
        ([[1.0, 0.0], [-1.0, 0.0]], r"relative residual inf; the Newton system was singular\)"),
    ],
)
def test_nashmtl_dependent_gradients_raise_naming_the_method(jacobian: list[list[float]], message: str) -> None:
    matrix = torch.tensor(jacobian)
    method = NashMTL(matrix.shape[0])
    with pytest.raises(ValueError, match=r"NashMTL: no positive solution of Gα = 1/α found in 30 Newton .*" + message):
        method.coefficients(matrix @ matrix.T)
    assert torch.equal(method.alpha, torch.ones(matrix.shape[0]))  # the failed solve is not stored


def test_nashmtl_without_validate_skips_the_residual_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> None:
        raise AssertionError("the residual check (a host sync) ran without validate")

    monkeypatch.setattr(NashMTL, "_check_solution", fail)
    matrix = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    alpha = NashMTL(2, validate=False).coefficients(matrix @ matrix.T)  # singular: no LinAlgError either
    assert not bool(torch.isfinite(alpha).all())


@pytest.mark.parametrize("validate", [True, False])
def test_nashmtl_keep_previous_reuses_the_last_solved_alpha_and_counts_the_failure(validate: bool) -> None:
    method = NashMTL(3, on_solve_failure="keep_previous", validate=validate)
    independent = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 4.0]])
    solved = method.coefficients(independent @ independent.T)
    torch.testing.assert_close(solved, torch.tensor([1.0, 0.5, 0.25]))  # α_k |g_k| = 1 for orthogonal gradients
    dependent = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, -1.0, 0.0]])
    assert torch.equal(method.coefficients(dependent @ dependent.T), solved)
    assert method.solve_failures == 1 and torch.equal(method.alpha, solved)
    zero_gradient = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # a task with no labels
    assert torch.equal(method.coefficients(zero_gradient @ zero_gradient.T), solved)
    assert method.solve_failures == 2


def test_nashmtl_keep_previous_steps_with_the_plain_sum_before_any_solve_and_saves_its_count() -> None:
    encoder, losses = tiny_problem(constant_second_task=True)  # task 1 has a zero shared gradient
    shared = list(encoder.parameters())
    method = NashMTL(2, on_solve_failure="keep_previous", max_norm=0)
    task_losses = losses()
    expected = flat(list(torch.autograd.grad(sum(task_losses), shared, retain_graph=True)))
    method.step(task_losses, shared_parameters=shared)
    torch.testing.assert_close(flat([p.grad for p in shared]), expected)  # α = 1: the plain sum
    assert method.steps == 1 and method.solve_failures == 1  # the step was taken
    restored = NashMTL(2, on_solve_failure="keep_previous")
    restored.load_state_dict(method.state_dict())
    assert restored.solve_failures == 1 and restored.steps == 1


def test_nashmtl_keep_previous_still_raises_on_a_gradient_that_is_not_finite() -> None:
    method = NashMTL(2, on_solve_failure="keep_previous")
    with pytest.raises(ValueError, match=r"NashMTL: the gradient of task 0 is not finite"):
        method.coefficients(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]))
    assert method.solve_failures == 0


def test_nashmtl_keep_previous_with_reuse_steps_keeps_stepping_on_the_last_solved_alpha() -> None:
    torch.manual_seed(0)
    encoder, heads, inputs = nn.Linear(4, 5), nn.ModuleList([nn.Linear(5, 1), nn.Linear(5, 1)]), torch.randn(6, 4)
    shared = list(encoder.parameters())

    def losses(second_reaches_encoder: bool = True) -> list[Tensor]:
        rep = encoder(inputs)
        second = heads[1](rep if second_reaches_encoder else rep.detach())
        return [(heads[0](rep) - 1).pow(2).mean(), second.abs().mean() + 0.1]

    method = NashMTL(2, on_solve_failure="keep_previous", update_weights_every=2, max_norm=0)
    method.step(losses(), shared_parameters=shared)  # step 0 solves
    solved = method.alpha.clone()
    assert not torch.equal(solved, torch.ones(2))
    method.step(losses(), shared_parameters=shared)  # step 1 reuses
    method.step(losses(second_reaches_encoder=False), shared_parameters=shared)  # step 2 solves: no solution
    assert method.solve_failures == 1 and method.steps == 3 and torch.equal(method.alpha, solved)
    torch.testing.assert_close(method.last_weights, solved)  # no clip: the weights are α itself
    assert method.diagnostics() == {"solve_failures": 1.0}


def test_nashmtl_refuses_an_unknown_failure_policy() -> None:
    message = r"NashMTL: on_solve_failure must be one of 'raise', 'keep_previous', got 'skip'"
    with pytest.raises(ValueError, match=message):
        NashMTL(2, on_solve_failure="skip")


@pytest.mark.parametrize("every", [1, 2])
def test_nashmtl_last_weights_give_the_clipped_direction(every: int) -> None:
    encoder, losses = tiny_problem()
    shared = list(encoder.parameters())
    method = NashMTL(2, update_weights_every=every)  # max_norm = 1 < |d| = √2: every step is clipped
    for _ in range(2):  # with every=2 the second step reuses α
        task_losses = losses()
        by_task = [flat(list(torch.autograd.grad(loss, shared, retain_graph=True))) for loss in task_losses]
        method.step(task_losses, shared_parameters=shared)
        direction = flat([p.grad for p in shared])
        assert float(direction.norm()) == pytest.approx(1.0, rel=1e-5)
        assert float((method.alpha[0] * by_task[0] + method.alpha[1] * by_task[1]).norm()) > 1.2  # clipped
        expected = method.last_weights[0] * by_task[0] + method.last_weights[1] * by_task[1]
        torch.testing.assert_close(direction, expected)


# ------------------------------------------------------------------------------------------------ ExcessMTL
def test_excessmtl_a_refused_baseline_leaves_the_state_unchanged() -> None:
    method = ExcessMTL(2)
    with pytest.raises(ValueError, match=r"ExcessMTL: the baseline excess-risk estimate E⁰ of task 1 is 0\.0"):
        method.aggregate([torch.tensor([[1.0, 0.0], [0.0, 0.0]])], torch.ones(2))
    assert method.steps == 0 and method.squared_sums == []
    assert torch.equal(method.baseline, torch.zeros(2, dtype=torch.float64))

    pieces = [torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
    (direction,), weights = method.aggregate(pieces, torch.ones(2))
    (expected,), expected_weights = ExcessMTL(2).aggregate(pieces, torch.ones(2))
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=0)
    torch.testing.assert_close(direction, expected, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ GradVac
def test_gradvac_without_validate_a_zero_partner_keeps_its_target_and_adds_nothing() -> None:
    method = GradVac(3, validate=False)
    jacobian = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 1.0]])  # task 1's gradient is zero
    mix = method.vaccinated(jacobian @ jacobian.T)
    assert bool(torch.isfinite(method.targets).all())
    assert torch.equal(method.targets[:, 1], torch.zeros(3))  # no cosine with a zero gradient
    assert float(mix[0, 1]) == 0.0 and float(mix[2, 1]) == 0.0

    after = torch.tensor([[1.0, 0.2], [0.3, 1.0], [0.5, 1.0]])
    method.coefficients(after @ after.T)
    assert bool(torch.isfinite(method.targets).all())
    cosine = float(after[0] @ after[1] / (after[0].norm() * after[1].norm()))
    assert float(method.targets[0, 1]) == pytest.approx(0.01 * cosine)  # the EMA goes on from the kept 0


# ------------------------------------------------------------------------------------------------ MoCo
def test_moco_a_refused_normalisation_leaves_the_state_unchanged() -> None:
    method = MoCo(2, normalize_gradients=True).double()
    scales = method.task_scales(torch.tensor([1.0, 2.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    method.aggregate([torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)], scales)
    tracked, weights = [y.clone() for y in method.tracked], method.weights.clone()
    with pytest.raises(ValueError, match=r"MoCo: the gradient of task 1 is zero"):
        method.aggregate([torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)], scales)
    assert method.steps == 1 and torch.equal(method.weights, weights)
    assert all(torch.equal(y, before) for y, before in zip(method.tracked, tracked, strict=True))


# ------------------------------------------------------------------------------------------------ modes, devices
@pytest.mark.parametrize("cls", [DBMTL, MoCo])
def test_methods_with_per_coordinate_running_state_refuse_representation_mode(cls: type) -> None:
    with pytest.raises(ValueError, match=rf"{cls.__name__}: supports mode 'parameters' only, got 'representation'"):
        cls(2, mode="representation")


def test_dbmtl_restored_ema_gradients_follow_the_gradients_device() -> None:
    # The meta device stands in for an accelerator: the restored EMA lives on the CPU, the gradients elsewhere.
    method = DBMTL(2, validate=False)
    method.aggregate([torch.randn(2, 3)], torch.ones(2))
    resumed = DBMTL(2, validate=False)
    resumed.load_state_dict(method.state_dict())
    (direction,), _ = resumed.aggregate([torch.randn(2, 3, device="meta")], torch.ones(2, device="meta"))
    assert direction.device.type == "meta" and resumed.ema_gradients[0].device.type == "meta"
