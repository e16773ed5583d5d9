"""GradDrop, GradNorm, DB-MTL and the loss-level FAMO and STCH: values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from taskbalance.aggregation import DBMTL, GradDrop, GradNorm
from taskbalance.weighting import FAMO, STCH


def test_graddrop_keeps_everything_without_sign_conflict() -> None:
    pieces = [torch.tensor([[1.0, -2.0, 0.0], [3.0, -1.0, 0.0]])]
    (d,), _ = GradDrop(2).aggregate(pieces, torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([4.0, -3.0, 0.0]))


def test_graddrop_keeps_one_sign_per_coordinate() -> None:
    generator = torch.Generator().manual_seed(0)
    piece = torch.randn(4, 500, generator=generator)
    (d,), _ = GradDrop(4, seed=3).aggregate([piece], torch.ones(4))
    positive = piece.clamp(min=0).sum(dim=0)
    negative = piece.clamp(max=0).sum(dim=0)
    assert torch.all(torch.isclose(d, positive) | torch.isclose(d, negative))
    # P(keep positive) = ½(1 + Σg/Σ|g|): with a strongly positive coordinate the positive side wins almost always.
    chosen_positive = torch.isclose(d, positive) & (positive != 0)
    purity = 0.5 * (1 + piece.sum(0) / piece.abs().sum(0))
    assert float(chosen_positive[purity > 0.9].float().mean()) > 0.8
    assert float(chosen_positive[purity < 0.1].float().mean()) < 0.2


def test_graddrop_full_leak_is_the_sum() -> None:
    piece = torch.tensor([[1.0, -2.0], [-3.0, 1.0]])
    (d,), _ = GradDrop(2, leak=1.0).aggregate([piece], torch.ones(2))
    torch.testing.assert_close(d, piece.sum(0))


def test_gradnorm_weight_gradient_and_renormalisation_by_hand() -> None:
    method = GradNorm(2, alpha=1.0)
    with torch.no_grad():
        method.task_weights.copy_(torch.tensor([1.0, 3.0]))  # renormalised to sum 2: (0.5, 1.5)
    method.task_scales(torch.tensor([2.0, 1.0]), torch.ones(2))  # first call: L(0) = L, rates r = 1
    torch.testing.assert_close(method.task_weights.detach(), torch.tensor([0.5, 1.5]))
    # Raw gradient norms |g| = (2, 1): weighted norms w|g| = (1, 1.5), mean 1.25 = target (r = 1).
    # Objective Σ|w_k|g_k| − 1.25| → gradient sign(w_k|g_k| − 1.25)·|g_k| = (−2, +1).
    scales = method.task_weights.detach()
    gram = torch.diag(torch.tensor([4.0, 1.0])) * scales[:, None] * scales[None, :]
    coefficients = method.coefficients(gram)
    torch.testing.assert_close(coefficients, torch.ones(2))
    torch.testing.assert_close(method.task_weights.grad, torch.tensor([-2.0, 1.0]))


@pytest.mark.parametrize(
    ("weights", "problem"),
    [([3.0, -1.0], r"the weight of task 1 \('depth'\) is -1 after renormalising the weights \[3, -1\] to sum 2"),
     ([1.0, -1.0], r"the weights \[1, -1\] sum to 0, so they cannot be renormalised to sum 2")],
)
def test_gradnorm_refuses_a_weight_the_optimizer_pushed_below_zero(weights: list[float], problem: str) -> None:
    method = GradNorm(2, task_names=["seg", "depth"])
    with torch.no_grad():
        method.task_weights.copy_(torch.tensor(weights))
    with pytest.raises(ValueError, match=rf"GradNorm: {problem}\. A weight ≤ 0 would train its task's loss upward"):
        method.task_scales(torch.tensor([2.0, 1.0]), torch.ones(2))
    assert torch.equal(method.task_weights.detach(), torch.tensor(weights))  # left as it was
    assert bool(torch.isnan(method.initial_losses).all())


def test_gradnorm_without_validate_renormalises_any_weights() -> None:
    method = GradNorm(2, validate=False)
    with torch.no_grad():
        method.task_weights.copy_(torch.tensor([3.0, -1.0]))
    method.task_scales(torch.tensor([2.0, 1.0]), torch.ones(2))
    torch.testing.assert_close(method.task_weights.detach(), torch.tensor([3.0, -1.0]))


def _gradnorm_steps_with_adam(method: GradNorm, steps: int, lr: float) -> None:
    """The regime where one task learns much faster: L̃ = (0.02, 1.98) relative to the first losses, equal unit
    gradient norms, Adam on the method's own parameter (what the loop does)."""
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    method.task_scales(torch.tensor([1.0, 1.0]), torch.ones(2))  # L(0) = 1
    for _ in range(steps):
        optimizer.zero_grad()
        scales = method.task_scales(torch.tensor([0.02, 1.98]), torch.ones(2))
        method.coefficients(torch.diag(scales**2))  # Gram of the scaled gradients s_k·g_k with |g_k| = 1
        optimizer.step()


def test_gradnorm_paper_weights_reach_zero_for_a_fast_task_and_the_error_names_the_remedy() -> None:
    method = GradNorm(2, task_names=["fast", "slow"])
    with pytest.raises(ValueError) as error:
        _gradnorm_steps_with_adam(method, 400, lr=1e-2)  # the weight crosses 0 after about 1/lr steps
    message = str(error.value)
    assert message.startswith("GradNorm: the weight of task 0 ('fast') is -")
    assert 'weights="softmax" keeps every weight positive' in message


def test_gradnorm_softmax_weights_stay_positive_in_the_same_regime_and_sum_to_k() -> None:
    method = GradNorm(2, weights="softmax")
    _gradnorm_steps_with_adam(method, 400, lr=1e-2)
    weights = method.current_weights()
    assert bool((weights > 0).all()) and float(weights.sum()) == pytest.approx(2.0)
    assert float(weights[0]) < 0.2  # pulled towards the fast task's small target all the same
    assert not hasattr(method, "task_weights") and set(dict(method.named_parameters())) == {"weight_logits"}


def test_gradnorm_softmax_gradient_is_the_chain_rule_through_the_softmax() -> None:
    method = GradNorm(2, alpha=1.0, weights="softmax")
    with torch.no_grad():
        method.weight_logits.copy_(torch.tensor([0.0, math.log(3.0)]))  # w = 2·(1/4, 3/4) = (0.5, 1.5)
    scales = method.task_scales(torch.tensor([2.0, 1.0]), torch.ones(2))
    torch.testing.assert_close(scales, torch.tensor([0.5, 1.5]))
    method.coefficients(torch.diag(torch.tensor([4.0, 1.0])) * scales[:, None] * scales[None, :])
    # As in the renormalised case: ∂objective/∂w = (−2, +1); ∂w/∂θ = K·(diag(p) − p pᵀ) with p = (1/4, 3/4).
    p = torch.tensor([0.25, 0.75])
    expected = 2 * (torch.diag(p) - torch.outer(p, p)) @ torch.tensor([-2.0, 1.0])
    torch.testing.assert_close(method.weight_logits.grad, expected)


def test_gradnorm_refuses_an_unknown_weight_form() -> None:
    with pytest.raises(ValueError, match=r"GradNorm: weights must be one of 'renormalised', 'softmax', got 'clamp'"):
        GradNorm(2, weights="clamp")


def test_gradnorm_relative_rates_follow_the_loss_ratios() -> None:
    method = GradNorm(2)
    method.task_scales(torch.tensor([2.0, 4.0]), torch.ones(2))
    method.task_scales(torch.tensor([1.0, 4.0]), torch.ones(2))  # ratios (0.5, 1) → r = (2/3, 4/3)
    torch.testing.assert_close(method.relative_rates, torch.tensor([2 / 3, 4 / 3]))


def test_dbmtl_ema_follows_the_authors_update() -> None:
    method = DBMTL(2, beta=0.9, beta_sigma=0.5)
    first = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    second = torch.tensor([[0.0, 1.0], [0.0, 4.0]])
    (d1,), _ = method.aggregate([first], torch.ones(2))
    (d2,), weights = method.aggregate([second], torch.ones(2))
    # The authors' buffer starts at 0: ĝ_1 = g_1 + 0.9·(0 − g_1) = 0.1·g_1, then ĝ_2 = g_2 + (0.9/√2)(ĝ_1 − g_2).
    buffer = 0.1 * first
    norms = buffer.norm(dim=1)
    torch.testing.assert_close(d1, (norms.max() / norms) @ buffer)  # = 0.1·(2, 2)
    torch.testing.assert_close(d1, torch.tensor([0.2, 0.2]))
    buffer = second + 0.9 / math.sqrt(2) * (buffer - second)
    norms = buffer.norm(dim=1)
    torch.testing.assert_close(d2, (norms.max() / norms) @ buffer)
    torch.testing.assert_close(weights, norms.max() / norms)


def test_dbmtl_rejects_a_non_positive_loss_naming_the_task() -> None:
    losses = torch.tensor([1.0, 0.0], requires_grad=True) * 1.0
    with pytest.raises(ValueError, match=r"DBMTL: the loss of task 1 \('depth'\) is 0.0.*must be > 0"):
        DBMTL(2, task_names=["seg", "depth"]).step(losses, shared_parameters=[torch.nn.Parameter(torch.ones(1))])


def test_famo_consecutive_batches_weights_and_first_logit_update_by_hand() -> None:
    method = FAMO(2, lr=0.025, weight_decay=0.0, same_batch=False)
    losses = torch.tensor([1.0, 4.0], requires_grad=True)
    method(losses).backward()
    # z = (½, ½), c = ½/1 + ½/4 = 0.625 → ∂total/∂L = z/(c·L) = (0.8, 0.2).
    torch.testing.assert_close(method.last_weights, torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(losses.grad, torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(method.logits, torch.zeros(2))  # no previous losses: no update
    # Task 0's log-loss falls by log 2, task 1's by 0: gradient z⊙(δ − z·δ) = (+, −)·log(2)/4; Adam's first step
    # moves each logit by lr against the sign of its gradient.
    method(torch.tensor([0.5, 4.0]))
    torch.testing.assert_close(method.logits, torch.tensor([-0.025, 0.025]), atol=1e-6, rtol=0)
    assert method.last_weights[0] / method.last_weights[1] < (1 / 0.5) / (1 / 4.0)


def test_famo_state_survives_a_state_dict_round_trip() -> None:
    method = FAMO(2, same_batch=False)
    method(torch.tensor([1.0, 4.0]))
    method(torch.tensor([0.5, 4.0]))
    clone = FAMO(2, same_batch=False)
    clone.load_state_dict(method.state_dict())
    method(torch.tensor([0.4, 3.0]))
    clone(torch.tensor([0.4, 3.0]))
    torch.testing.assert_close(clone.logits, method.logits)


def test_famo_same_batch_update_by_hand() -> None:
    method = FAMO(2, lr=0.025, weight_decay=0.0)
    losses = torch.tensor([1.0, 4.0], requires_grad=True)
    method(losses).backward()
    torch.testing.assert_close(method.last_weights, torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(method.logits, torch.zeros(2))  # nothing moves before the step's effect is known
    # After the step the same batch gives (0.5, 4.0): task 0 fell by log 2, task 1 not at all; as above, Adam's
    # first step moves the logits by lr towards the task that improved less.
    method.update(torch.tensor([0.5, 4.0]))
    torch.testing.assert_close(method.logits, torch.tensor([-0.025, 0.025]), atol=1e-6, rtol=0)
    # The next batch's losses are not compared with the previous batch: a much larger loss moves nothing.
    method(torch.tensor([9.0, 9.0]))
    torch.testing.assert_close(method.logits, torch.tensor([-0.025, 0.025]), atol=1e-6, rtol=0)


def test_famo_same_batch_refuses_a_step_without_update_and_an_update_without_step() -> None:
    method = FAMO(2)
    with pytest.raises(RuntimeError, match="must follow a call"):
        method.update(torch.tensor([1.0, 1.0]))
    method(torch.tensor([1.0, 4.0]))
    with pytest.raises(RuntimeError, match=r"call method\.after_step\(new_losses\) \(or update\)"):
        method(torch.tensor([1.0, 4.0]))
    with pytest.raises(ValueError, match=r"the loss after the step of task 1 is 0\.0"):
        method.update(torch.tensor([1.0, 0.0]))
    with pytest.raises(RuntimeError, match=r"update\(\) is not used"):
        FAMO(2, same_batch=False).update(torch.tensor([1.0, 1.0]))


def test_stch_value_and_weights_by_hand() -> None:
    losses = torch.tensor([1.0, math.e], requires_grad=True)
    method = STCH(2, mu=0.5, warmup_epochs=0)  # z = 1
    total = method(losses)
    # u = log L = (0, 1); total = ½·log(e⁰ + e²) ; weights = softmax(u/μ)_k / L_k.
    torch.testing.assert_close(total, torch.tensor(0.5 * math.log(1 + math.e**2)))
    share = math.e**2 / (1 + math.e**2)
    expected = torch.tensor([1 - share, share / math.e])
    torch.testing.assert_close(method.last_weights, expected)
    total.backward()
    torch.testing.assert_close(losses.grad, expected)


def test_stch_small_mu_approaches_the_max() -> None:
    total = STCH(3, mu=1e-3, log_losses=False, warmup_epochs=0)(torch.tensor([0.2, 0.7, 0.5]))
    assert abs(float(total) - 0.7) < 1e-3


def test_stch_warm_up_sums_log_losses_then_divides_by_the_last_warm_up_epoch() -> None:
    method = STCH(2, mu=0.5, warmup_epochs=2)
    losses = torch.tensor([4.0, 0.25], requires_grad=True)
    torch.testing.assert_close(method(losses), torch.tensor(0.0))  # log 4 + log ¼
    torch.testing.assert_close(method.last_weights, torch.tensor([0.25, 4.0]))
    method.end_epoch(torch.tensor([8.0, 8.0]))  # first warm-up epoch: not the nadir
    method.end_epoch(torch.tensor([2.0, 0.5]))  # last warm-up epoch: z = (2, ½)
    torch.testing.assert_close(method.nadir, torch.tensor([2.0, 0.5]))
    total = method(losses)
    # u = log(L/z) = (log 2, −log 2): total = ½·log(e^{2 log 2} + e^{−2 log 2}) = ½·log(4 + ¼).
    torch.testing.assert_close(total, torch.tensor(0.5 * math.log(4.25)))
    total.backward()
    share = 4 / 4.25
    expected = torch.tensor([share / 4.0, (1 - share) / 0.25])
    torch.testing.assert_close(losses.grad, expected)
    torch.testing.assert_close(method.last_weights, expected)
    method.end_epoch(torch.tensor([1.0, 1.0]))  # after the warm-up the nadir stays
    torch.testing.assert_close(method.nadir, torch.tensor([2.0, 0.5]))


def test_stch_nadir_changes_the_weights_even_with_log_losses() -> None:
    losses = torch.tensor([1.0, 1.0])
    plain = STCH(2, warmup_epochs=0)
    plain(losses)
    warmed = STCH(2, warmup_epochs=1)
    warmed.end_epoch(torch.tensor([1.0, 4.0]))
    warmed(losses)
    torch.testing.assert_close(plain.last_weights, torch.tensor([0.5, 0.5]))
    assert float(warmed.last_weights[0]) > 0.75  # task 0 is further from its nadir: it gets the weight


def test_stch_warm_up_state_survives_a_checkpoint() -> None:
    method = STCH(2, warmup_epochs=1)
    method.end_epoch(torch.tensor([2.0, 3.0]))
    resumed = STCH(2, warmup_epochs=1)
    resumed.load_state_dict(method.state_dict())
    resumed(torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(resumed.last_weights, torch.tensor([0.25, 1 / 6]))  # softmax(0, 0)/L: past warm-up
    assert resumed.extra_repr().endswith("warmup_epochs=1")


def test_stch_defaults_to_the_authors_five_warm_up_epochs_and_balances_after_them() -> None:
    # Without a warm-up (z = 1, μ = 1, logs) every task's weight is 1/Σ_j L_j: equal weighting in disguise.
    no_warm_up = STCH(3, warmup_epochs=0)
    no_warm_up(torch.tensor([1.5, 0.6, 0.2]))
    torch.testing.assert_close(no_warm_up.last_weights, torch.full((3,), 1 / 2.3))
    method = STCH(3)
    for _ in range(4):
        method.end_epoch(torch.tensor([9.0, 9.0, 9.0]))
        method(torch.tensor([1.5, 0.6, 0.2]))
        torch.testing.assert_close(method.last_weights, 1 / torch.tensor([1.5, 0.6, 0.2]))  # still Σ_k log L_k
    method.end_epoch(torch.tensor([1.5, 0.6, 0.2]))  # the fifth epoch's means are the nadir
    torch.testing.assert_close(method.nadir, torch.tensor([1.5, 0.6, 0.2]))
    # A task's losses scaled by 100 from the start: its nadir scales too, so the weights × losses do not change.
    scaled = STCH(3)
    for _ in range(5):
        scaled.end_epoch(torch.tensor([150.0, 0.6, 0.2]))
    method(torch.tensor([1.0, 0.6, 0.3]))
    scaled(torch.tensor([100.0, 0.6, 0.3]))
    torch.testing.assert_close(scaled.last_weights * torch.tensor([100.0, 0.6, 0.3]),
                               method.last_weights * torch.tensor([1.0, 0.6, 0.3]))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_stch_warmup_epochs_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="warmup_epochs must be an int >= 0"):
        STCH(2, warmup_epochs=bad)


def test_stch_nadir_must_be_positive_and_names_the_task() -> None:
    method = STCH(2, warmup_epochs=1, task_names=["seg", "depth"])
    with pytest.raises(ValueError, match="depth"):
        method.end_epoch(torch.tensor([1.0, 0.0]))


def test_stch_without_logs_divides_by_the_nadir() -> None:
    method = STCH(2, log_losses=False, warmup_epochs=1)
    losses = torch.tensor([2.0, 4.0], requires_grad=True)
    torch.testing.assert_close(method(losses), torch.tensor(6.0))  # warm-up: plain sum, z = 1
    torch.testing.assert_close(method.last_weights, torch.tensor([1.0, 1.0]))
    method.end_epoch(torch.tensor([2.0, 4.0]))
    total = method(losses)  # u = L/z = (1, 1): log(2e)
    torch.testing.assert_close(total, torch.tensor(1 + math.log(2)))
    total.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.25, 0.125]))  # ½/z_k
    torch.testing.assert_close(method.last_weights, losses.grad)
