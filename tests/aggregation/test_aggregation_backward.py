"""End to end: ``backward`` on a tiny MultiTaskModel fills ``.grad`` as the aggregation of explicit gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from taskbalance import methods
from taskbalance.aggregation import AGGREGATIONS, DBMTL, MGDA, GradDrop, GradientAggregation, create
from taskbalance.aggregation.engine import task_leaves, task_roots
from taskbalance.models.base import MultiTaskModel
from taskbalance.tasks import Classification, Regression
from taskbalance.weighting import UW, Scalarization

GRADIENT_METHODS = [n for n in AGGREGATIONS.names() if issubclass(AGGREGATIONS.get(n), GradientAggregation)]
NUM_TASKS = 3
# The clipping of Nash-MTL, FairGrad and SDMGrad acts after the aggregation; it has its own tests
# (test_nashmtl_reuse.py, test_author_fidelity.py).
OPTIONS = {"nashmtl": {"max_norm": 0.0}, "fairgrad": {"max_norm": 0.0}, "sdmgrad": {"max_norm": 0.0}}


def tiny_model() -> MultiTaskModel:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh())
    heads = {
        "a": nn.Linear(6, 1),
        "b": nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2)),
        "c": nn.Linear(6, 1),
    }
    return MultiTaskModel(encoder, heads).double()


def forward(model: MultiTaskModel) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(9, 5, generator=generator, dtype=torch.float64)
    rep = model.shared(x)
    out = model.decode(rep)
    losses = torch.stack([out["a"].pow(2).mean() + 0.5, (out["b"] - 1).pow(2).mean(), (out["c"] + 2).abs().mean()])
    return rep, losses


def expected_gradients(
    model: MultiTaskModel, reference: GradientAggregation, mode: str, scales: Tensor
) -> tuple[list[Tensor], dict[str, list[Tensor]]]:
    """Shared and head gradients computed the slow, explicit way."""
    rep, losses = forward(model)
    shared = list(model.shared_parameters())
    targets = [rep] if mode == "representation" else shared
    per_task = [torch.autograd.grad(losses[k], targets, retain_graph=True) for k in range(NUM_TASKS)]
    pieces = [torch.stack([per_task[k][i] for k in range(NUM_TASKS)]) for i in range(len(targets))]
    s = reference.task_scales(losses, scales)
    if isinstance(reference, GradDrop) and mode == "representation":  # the signs of the activations count
        directions, _ = reference.aggregate(pieces, s, inputs=[rep.detach()])
    else:
        directions, _ = reference.aggregate(pieces, s)
    if mode == "representation":
        directions = list(torch.autograd.grad(rep, shared, grad_outputs=directions[0], retain_graph=True))
    heads = {}
    for k, name in enumerate(model.task_names):
        params = list(model.task_parameters(name))
        heads[name] = [g * s[k] for g in torch.autograd.grad(losses[k], params, retain_graph=True)]
    return directions, heads


@pytest.mark.parametrize("strategy", ["loop", "batched"])
@pytest.mark.parametrize(
    ("name", "mode"),
    [(n, m) for n in GRADIENT_METHODS for m in AGGREGATIONS.get(n).supported_modes],
)
def test_backward_fills_grad_with_the_aggregation_of_explicit_gradients(name: str, mode: str, strategy: str) -> None:
    model = tiny_model()
    method = create(name, NUM_TASKS, mode=mode, strategy=strategy, **OPTIONS.get(name, {})).double()
    reference = copy.deepcopy(method)  # same generator state / weights
    shared_expected, heads_expected = expected_gradients(model, reference, mode, torch.ones(NUM_TASKS).double())
    for p in model.parameters():
        p.grad = torch.full_like(p, 123.0)  # stale values must be replaced, not accumulated
    rep, losses = forward(model)
    method.step(losses, shared_parameters=list(model.shared_parameters()), representation=rep)
    for p, expected in zip(model.shared_parameters(), shared_expected, strict=True):
        torch.testing.assert_close(p.grad, expected)
    for task, expected in heads_expected.items():
        for p, g in zip(model.task_parameters(task), expected, strict=True):
            torch.testing.assert_close(p.grad, g)
    assert method.last_weights.shape == (NUM_TASKS,)
    assert not method.last_weights.requires_grad


def test_weighting_scales_per_task_gradients_before_aggregation() -> None:
    weights = [2.0, 0.5, 1.0]
    model = tiny_model()
    method = MGDA(NUM_TASKS, weighting=Scalarization(NUM_TASKS, weights=weights)).double()
    rep, losses = forward(model)
    shared = list(model.shared_parameters())
    per_task = [torch.autograd.grad(losses[k], shared, retain_graph=True) for k in range(NUM_TASKS)]
    flat = [torch.cat([g.flatten() for g in grads]) for grads in per_task]
    scaled = torch.stack([g * w for g, w in zip(flat, weights, strict=True)])
    c = MGDA(NUM_TASKS).coefficients(scaled @ scaled.T)
    expected = c @ scaled
    head_expected = [g * weights[1] for g in torch.autograd.grad(losses[1], list(model.task_parameters("b")))]
    rep, losses = forward(model)
    method.step(losses, shared_parameters=shared, representation=rep)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in shared]), expected)
    for p, g in zip(model.task_parameters("b"), head_expected, strict=True):
        torch.testing.assert_close(p.grad, g)
    torch.testing.assert_close(method.last_weights, c * torch.tensor(weights, dtype=torch.float64))


def test_learnable_weighting_gets_its_own_gradient() -> None:
    model = tiny_model()
    weighting = UW(NUM_TASKS, kinds=["regression"] * NUM_TASKS).double()
    method = MGDA(NUM_TASKS, weighting=weighting, mode="representation")
    rep, losses = forward(model)
    # d/ds_k of Σ ½e^(−s_k)L_k + ½s_k at s = 0 is −½L_k + ½.
    expected = (-0.5 * losses.detach() + 0.5).to(torch.float64)
    method.step(losses, shared_parameters=list(model.shared_parameters()), representation=rep)
    torch.testing.assert_close(weighting.log_variances.grad, expected)


def test_dbmtl_uses_log_loss_gradients() -> None:
    model = tiny_model()
    method = DBMTL(NUM_TASKS, beta=0.0).double()
    rep, losses = forward(model)
    values = losses.detach()
    shared = list(model.shared_parameters())
    grads = [
        torch.cat([g.flatten() for g in torch.autograd.grad(losses[k], shared, retain_graph=True)])
        for k in range(NUM_TASKS)
    ]
    logs = [g / v for g, v in zip(grads, values, strict=True)]
    biggest = max(float(g.norm()) for g in logs)
    expected = sum(biggest * g / g.norm() for g in logs)
    rep, losses = forward(model)
    method.step(losses, shared_parameters=shared, representation=rep)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in shared]), expected)


def test_representation_mode_needs_the_representation() -> None:
    model = tiny_model()
    _, losses = forward(model)
    with pytest.raises(ValueError, match="representation"):
        MGDA(NUM_TASKS, mode="representation").step(losses, shared_parameters=list(model.shared_parameters()))


def test_bad_losses_shape_is_quoted() -> None:
    model = tiny_model()
    rep, losses = forward(model)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        MGDA(NUM_TASKS).step(losses[:2], shared_parameters=list(model.shared_parameters()), representation=rep)


def test_shared_parameter_used_outside_the_representation_is_refused() -> None:
    model = tiny_model()
    rep, losses = forward(model)
    first = next(model.shared_parameters())
    losses = torch.stack([losses[0], losses[1], losses[2] + first.sum()])
    with pytest.raises(ValueError, match=r"task 2.*outside the representation"):
        MGDA(NUM_TASKS, mode="representation").step(
            losses, shared_parameters=list(model.shared_parameters()), representation=rep
        )


def test_bad_mode_and_mismatched_weighting_are_refused() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        MGDA(2, mode="rep")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_tasks=3, expected 2"):
        MGDA(2, weighting=Scalarization(3, weights=[1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"strategy must be one of \('auto', 'loop', 'batched'\), got 'vmap'"):
        create("pcgrad", 2, strategy="vmap")


def test_methods_create_builds_gradient_methods_with_task_names() -> None:
    tasks = {"left": Classification("left", 10), "depth": Regression("depth")}
    method = methods.create("mgda_ub", tasks)
    assert isinstance(method, GradientAggregation)
    assert method.mode == "representation" and method.task_names == ["left", "depth"]
    assert methods.info("cagrad").hyperparameters["c"].startswith("radius")


def test_each_task_reaches_only_its_own_head_through_the_stack() -> None:
    model = tiny_model()
    rep, losses = forward(model)
    roots = task_roots(losses)
    for root, name in zip(roots, model.task_names, strict=True):
        leaves = task_leaves(root, stop_at=[rep.grad_fn])
        assert {id(p) for p in leaves} == {id(p) for p in model.task_parameters(name)}


def test_a_list_of_scalar_losses_gives_the_same_gradients_as_the_stack() -> None:
    model = tiny_model()
    rep, losses = forward(model)
    MGDA(NUM_TASKS).step(losses, shared_parameters=list(model.shared_parameters()), representation=rep)
    stacked = [p.grad.clone() for p in model.parameters()]
    rep, losses = forward(model)
    MGDA(NUM_TASKS).step(list(losses.unbind()), shared_parameters=list(model.shared_parameters()))
    for p, expected in zip(model.parameters(), stacked, strict=True):
        torch.testing.assert_close(p.grad, expected)


@pytest.mark.parametrize("mode", ["parameters", "representation"])
def test_batched_strategy_handles_a_leaf_two_tasks_share_outside_the_shared_parameters(mode: str) -> None:
    # The head leaf reached by two tasks gets the sum of both tasks' gradients, whichever strategy computed them.
    grads = {}
    for strategy in ("loop", "batched"):
        model = tiny_model()
        bias = nn.Parameter(torch.tensor(0.25, dtype=torch.float64))
        rep, losses = forward(model)
        losses = torch.stack([losses[0] + bias.pow(2), losses[1] + 3 * bias, losses[2]])
        method = create("upgrad", NUM_TASKS, mode=mode, strategy=strategy).double()
        method.step(losses, shared_parameters=list(model.shared_parameters()), representation=rep)
        grads[strategy] = [p.grad.clone() for p in [*model.parameters(), bias]]
    torch.testing.assert_close(grads["batched"][-1], torch.tensor(0.5 + 3.0, dtype=torch.float64))
    for loop, batched in zip(grads["loop"], grads["batched"], strict=True):
        torch.testing.assert_close(batched, loop)


def test_auto_strategy_is_the_measured_fastest_on_the_device() -> None:
    from taskbalance.aggregation.engine import MEASURED_FASTEST, resolve_strategy

    assert MEASURED_FASTEST["cpu"] == "loop"
    assert resolve_strategy("auto", torch.device("cpu")) == "loop"
    assert resolve_strategy("batched", torch.device("cpu")) == "batched"
    assert MGDA(NUM_TASKS).strategy == "auto"


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_shared_parameters_the_losses_never_reach_are_an_error_before_any_gradient_is_written(name: str) -> None:
    model, other = tiny_model(), tiny_model()
    _, losses = forward(model)
    assert "parameters" in AGGREGATIONS.get(name).supported_modes
    method = create(name, num_tasks=NUM_TASKS, mode="parameters", **OPTIONS.get(name, {}))
    with pytest.raises(ValueError, match=r"none of the \d+ shared parameters is reached by the task losses"):
        method.step(losses, shared_parameters=list(other.shared_parameters()))  # another model's encoder
    assert all(p.grad is None for p in model.parameters())  # the heads were left alone too
    if name == "gradnorm":  # refused before any state moved: no first losses taken from the refused batch
        assert bool(torch.isnan(method.initial_losses).all())
