"""GradDrop, FairGrad and SDMGrad as their authors' code runs them.

GradDrop (lingvo's layer, LibMTL): the sign purity per feature from the sign(A)-weighted batch sums of the task
gradients, one keep/drop decision per (task, feature) for the whole batch. FairGrad and SDMGrad (OptMN-Lab's
``methods/weight_methods.py``): the direction × K, then the shared gradient clipped to norm ``max_norm = 1``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from taskbalance.aggregation import GradDrop, create
from taskbalance.aggregation import graddrop as graddrop_module

torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------- GradDrop
def _kept_subsets(direction: Tensor, gradients: Tensor) -> list[set[tuple[int, ...]]]:
    """Per feature, the subsets S of tasks with ``direction[:, f] == Σ_{k ∈ S} gradients[k, :, f]`` for every sample."""
    num_tasks, _, features = gradients.shape
    found = []
    for f in range(features):
        matches = set()
        for size in range(num_tasks + 1):
            for subset in itertools.combinations(range(num_tasks), size):
                kept = gradients[list(subset), :, f].sum(0) if subset else torch.zeros_like(direction[:, f])
                if torch.allclose(direction[:, f], kept, rtol=0, atol=1e-12):
                    matches.add(subset)
        found.append(matches)
    return found


def _step_direction(method: GradDrop, activations: Tensor, gradients: Tensor) -> Tensor:
    """The representation gradient a representation-mode step backpropagates, for ``rep = activations`` and linear
    losses ``L_k = Σ gradients[k]·rep`` (task k's gradient w.r.t. the representation is ``gradients[k]``)."""
    scale = nn.Parameter(torch.ones(activations.shape[1:], dtype=activations.dtype))
    rep = activations * scale
    seen: list[Tensor] = []
    rep.register_hook(lambda grad: seen.append(grad.detach().clone()))
    losses = [(gradients[k] * rep).sum() for k in range(gradients.shape[0])]
    method.step(losses, shared_parameters=[scale], representation=rep)
    return seen[-1]  # the encoder backward of the direction comes last


def test_graddrop_makes_one_keep_or_drop_decision_per_task_and_feature_in_a_step() -> None:
    # Linear losses L_k = Σ c_k·rep: task k's gradient w.r.t. the representation is c_k, sample by sample.
    generator = torch.Generator().manual_seed(0)
    num_tasks, batch, features = 3, 6, 40
    coefficients = torch.randn(num_tasks, batch, features, generator=generator, dtype=torch.float64)
    encoder = nn.Linear(5, features).double()
    x = torch.randn(batch, 5, generator=generator, dtype=torch.float64)
    rep = torch.tanh(encoder(x))
    seen: list[Tensor] = []
    rep.register_hook(lambda grad: seen.append(grad.detach().clone()))
    losses = [(coefficients[k] * rep).sum() for k in range(num_tasks)]
    method = GradDrop(num_tasks, seed=1)
    method.step(losses, shared_parameters=list(encoder.parameters()), representation=rep)
    direction = seen[-1]  # the encoder backward of the direction comes last
    subsets = _kept_subsets(direction, coefficients)
    # Every feature's column is, for all samples at once, the sum of one subset of the tasks' gradients.
    assert all(subsets), [f for f, s in enumerate(subsets) if not s]
    # ... and the subsets follow the signs of G_k = Σ_b sign(A_b)·c_k,b: all positive or all negative ones kept.
    sums = torch.einsum("kbf,bf->kf", coefficients, torch.sign(rep.detach()))
    for f, matches in enumerate(subsets):
        positive = tuple(k for k in range(num_tasks) if sums[k, f] > 0)
        negative = tuple(k for k in range(num_tasks) if sums[k, f] < 0)
        assert matches & {positive, negative}, f


def test_graddrop_purity_uses_the_sign_weighted_batch_sums() -> None:
    # One sample with A > 0, one with A < 0. Task 0's gradients (2, −1) and task 1's (−1, −2) conflict at every
    # sample, but weighted by sign(A) both sum to positive G = (3, 1): P = 1, so both are kept, d = (1, −3), for any
    # seed. Per element (the old rule) d at sample 0 is 2 or −1; summed without sign(A), G = (1, −3) conflict and d
    # would be one task's gradients only.
    activations = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    gradients = torch.tensor([[[2.0], [-1.0]], [[-1.0], [-2.0]]], dtype=torch.float64)
    for seed in range(20):
        direction = _step_direction(GradDrop(2, seed=seed), activations, gradients)
        torch.testing.assert_close(direction, torch.tensor([[1.0], [-3.0]], dtype=torch.float64))
        (direction,), _ = GradDrop(2, seed=seed).aggregate([gradients], torch.ones(2), inputs=[activations])
        torch.testing.assert_close(direction, torch.tensor([[1.0], [-3.0]], dtype=torch.float64))


def test_graddrop_keeps_a_task_with_the_probability_of_the_weighted_purity() -> None:
    # Both samples with A > 0: G = (1, −3), P = ½(1 + (1 − 3)/(1 + 3)) = ¼; task 0 alone is kept w.p. ¼, task 1 alone
    # w.p. ¾, each feature's decision for both samples at once; the leak passes ℓ of the dropped one.
    features = 4000
    activations = torch.ones(2, features, dtype=torch.float64)
    gradients = torch.tensor([[2.0, -1.0], [-1.0, -2.0]], dtype=torch.float64)[:, :, None].expand(2, 2, features)
    direction = _step_direction(GradDrop(2, seed=0), activations, gradients)
    first = (direction == gradients[0]).all(dim=0)
    second = (direction == gradients[1]).all(dim=0)
    assert bool((first ^ second).all())
    assert abs(float(first.double().mean()) - 0.25) < 0.03
    leaky, _ = GradDrop(2, seed=0, leak=0.3).aggregate([gradients], torch.ones(2), inputs=[activations])
    kept = torch.where(first, gradients[0], gradients[1])
    torch.testing.assert_close(leaky[0], 0.3 * gradients.sum(0) + 0.7 * kept)


def test_graddrop_without_batch_marginalisation_is_the_per_element_rule() -> None:
    generator = torch.Generator().manual_seed(2)
    gradients = torch.randn(3, 5, 7, generator=generator)
    activations = torch.randn(5, 7, generator=generator)
    (old,), _ = GradDrop(3, seed=4, marginalize_batch=False).aggregate([gradients], torch.ones(3), inputs=[activations])
    (per_element,), _ = GradDrop(3, seed=4).aggregate([gradients], torch.ones(3))  # no activations: per coordinate
    torch.testing.assert_close(old, per_element, rtol=0, atol=0)
    with pytest.raises(ValueError, match="marginalize_batch must be a bool"):
        create("graddrop", 2, marginalize_batch=1)


def test_graddrop_masks_of_two_halves_with_summed_batch_sums_are_those_of_the_whole_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With sync_across_ranks, each rank's G_k are summed over the ranks and the generators draw the same U: every
    # rank masks its half exactly as one process masks the whole batch.
    generator = torch.Generator().manual_seed(3)
    gradients = torch.randn(3, 8, 5, generator=generator, dtype=torch.float64)
    activations = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    (whole,), _ = GradDrop(3, seed=5).aggregate([gradients], torch.ones(3), inputs=[activations])
    halves = [slice(0, 4), slice(4, 8)]
    sums = [torch.einsum("kbf,bf->kf", gradients[:, h], torch.sign(activations[h])) for h in halves]
    for rank, half in enumerate(halves):
        monkeypatch.setattr(graddrop_module, "all_reduce_sum", lambda values, other=sums[1 - rank]: values + other)
        method = GradDrop(3, seed=5)
        method._reduce_gram = True  # what step() sets inside a distributed job in representation mode
        (part,), _ = method.aggregate([gradients[:, half]], torch.ones(3), inputs=[activations[half]])
        torch.testing.assert_close(part, whole[half])


def test_graddrop_refuses_inputs_that_do_not_match_the_gradients() -> None:
    with pytest.raises(ValueError, match=r"GradDrop: inputs\[0\] has shape \(4, 2\), its gradients \(4, 3\)"):
        GradDrop(2).aggregate([torch.ones(2, 4, 3)], torch.ones(2), inputs=[torch.ones(4, 2)])
    with pytest.raises(ValueError, match="GradDrop: got 2 inputs for 1 gradient pieces"):
        GradDrop(2).aggregate([torch.ones(2, 4, 3)], torch.ones(2), inputs=[torch.ones(4, 3)] * 2)


# ----------------------------------------------------------------------------------------------- FairGrad, SDMGrad
CLIPPED = [("fairgrad", {"alpha": 2.0}), ("fairgrad", {}), ("sdmgrad", {})]


def _problem(scale: float = 1.0) -> tuple[nn.Module, nn.ModuleList, Tensor, list[Tensor]]:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh()).double()
    heads = nn.ModuleList([nn.Linear(6, 1), nn.Linear(6, 1), nn.Linear(6, 1)]).double()
    x = torch.randn(10, 4, dtype=torch.float64)
    targets = torch.randn(3, 10, 1, dtype=torch.float64)
    rep = encoder(x)
    losses = [scale * (heads[k](rep) - targets[k]).pow(2).mean() for k in range(3)]
    return encoder, heads, rep, losses


def _shared_gradient(encoder: nn.Module) -> Tensor:
    return torch.cat([p.grad.flatten() for p in encoder.parameters()])


@pytest.mark.parametrize("mode", ["parameters", "representation"])
@pytest.mark.parametrize(("name", "options"), CLIPPED)
def test_the_shared_gradient_is_clipped_to_max_norm_and_last_weights_give_it(
    name: str, options: dict, mode: str
) -> None:
    encoder, _, rep, losses = _problem(scale=50.0)  # large gradients: the clip acts
    method = create(name, 3, mode=mode, **options).double()
    shared = list(encoder.parameters())
    per_task = [
        torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)]) for loss in losses
    ]
    method.step(losses, shared_parameters=encoder.parameters(), representation=rep)
    direction = _shared_gradient(encoder)
    assert float(direction.norm()) == pytest.approx(1.0, rel=1e-5)
    # d = Σ_k last_weights_k ∇L_k holds for the clipped d.
    torch.testing.assert_close(method.last_weights @ torch.stack(per_task), direction)


@pytest.mark.parametrize(("name", "options"), CLIPPED)
def test_the_sum_reduction_is_k_times_the_mean_and_the_default(name: str, options: dict) -> None:
    results = {}
    for reduction in ("sum", "mean", None):
        encoder, _, rep, losses = _problem()
        chosen = {} if reduction is None else {"reduction": reduction}
        method = create(name, 3, max_norm=0.0, **options, **chosen).double()
        method.step(losses, shared_parameters=encoder.parameters(), representation=rep)
        results[reduction] = (_shared_gradient(encoder), method.last_weights)
    torch.testing.assert_close(results["sum"][0], 3 * results["mean"][0])
    torch.testing.assert_close(results["sum"][1], 3 * results["mean"][1])
    torch.testing.assert_close(results[None][0], results["sum"][0], rtol=0, atol=0)


def test_fairgrad_alpha_two_does_not_blow_up_as_the_gradients_vanish() -> None:
    # Gradients × s give an unclipped direction × s^((1−α)/(1+α)) = s^(−1/3): 10⁴ times longer at s = 10⁻¹².
    norms: dict[float, list[float]] = {0.0: [], 1.0: []}
    for max_norm, scale in itertools.product(norms, (1.0, 1e-6, 1e-12)):
        encoder, _, rep, losses = _problem(scale)
        method = create("fairgrad", 3, alpha=2.0, max_norm=max_norm).double()
        method.step(losses, shared_parameters=encoder.parameters(), representation=rep)
        norms[max_norm].append(float(_shared_gradient(encoder).norm()))
    free = norms[0.0]
    assert free[2] == pytest.approx(free[0] * 1e4, rel=1e-4)
    assert all(norm <= 1.0 + 1e-9 for norm in norms[1.0])
    assert norms[1.0][-1] == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(("name", "options"), CLIPPED)
def test_a_scaled_step_is_clipped_like_the_unscaled_one_and_an_overflow_keeps_the_weights(
    name: str, options: dict
) -> None:
    encoder, _, rep, losses = _problem(scale=50.0)
    method = create(name, 3, **options).double()
    method.step(losses, shared_parameters=encoder.parameters(), representation=rep)
    reference, weights = _shared_gradient(encoder), method.last_weights
    encoder, _, rep, losses = _problem(scale=50.0)
    scaled = create(name, 3, **options).double()
    scaled.step(losses, shared_parameters=encoder.parameters(), representation=rep, loss_scale=1024.0)
    # clip_grad_norm_'s factor max_norm/(|d| + 1e-6) sees the 1e-6 next to 1024·|d|: equal to ~1e-6 relative.
    torch.testing.assert_close(_shared_gradient(encoder) / 1024.0, reference, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(scaled.last_weights, weights, rtol=1e-5, atol=1e-7)
    encoder, _, rep, losses = _problem(scale=50.0)
    scaled.step(losses, shared_parameters=encoder.parameters(), representation=rep, loss_scale=1e308)
    assert not bool(torch.isfinite(_shared_gradient(encoder)).any())  # the GradScaler skips this step
    torch.testing.assert_close(scaled.last_weights, weights)  # the previous step's, not × 0


@pytest.mark.parametrize("name", ["fairgrad", "sdmgrad"])
@pytest.mark.parametrize("bad", [{"max_norm": -1.0}, {"max_norm": float("inf")}, {"max_norm": True},
                                 {"reduction": "total"}])
def test_bad_clip_and_reduction_options_are_refused(name: str, bad: dict) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(bad))} must be"):
        create(name, 2, **bad)


@pytest.mark.parametrize("name", ["graddrop", "fairgrad", "sdmgrad"])
def test_the_changed_defaults_raise_the_revision(name: str) -> None:
    assert type(create(name, 2)).revision == 1
