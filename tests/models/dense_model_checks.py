"""Shared check of the dense models' tests: output shapes, shared()+decode() = forward(), gradients everywhere."""

import torch

from taskbalance.models.base import MultiTaskModel
from taskbalance.types import HeadSpec


def check_forward_backward(model: MultiTaskModel, x: torch.Tensor, heads: dict[str, HeadSpec]) -> None:
    out = model(x)
    assert list(out) == list(heads)
    for name, spec in heads.items():
        assert tuple(out[name].shape) == (x.shape[0], spec.out_channels, *x.shape[-2:]), name
    with torch.no_grad():  # train-mode BN uses batch statistics, so a second pass gives the same values
        again = model.decode(model.shared(x))
    for name in heads:
        assert torch.equal(again[name], out[name]), name
    loss = sum((value * torch.randn_like(value)).mean() for value in out.values())
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def check_representation_step_is_exact(
    model: MultiTaskModel, losses: list[torch.Tensor], representation: object
) -> None:
    """A gradient method's representation-mode step gives the shared parameters exactly ``Σ_k w_k ∇_θ L_k``.

    A representation whose parts feed one another (a skip feature that also flows into a deeper feature) would
    count those paths twice in the one backward through the encoder.
    """
    from taskbalance import methods

    shared = list(model.shared_parameters())
    per_task = [torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True) for loss in losses]
    method = methods.create("mgda", len(losses), mode="representation")
    method.step(losses, shared_parameters=shared, representation=representation)
    weights = method.last_weights
    assert not torch.allclose(weights, weights[0].expand(len(losses)))  # a non-trivial combination
    for i, parameter in enumerate(shared):
        parts = [w * grads[i] for w, grads in zip(weights, per_task, strict=True) if grads[i] is not None]
        expected = sum(parts) if parts else torch.zeros_like(parameter)
        torch.testing.assert_close(parameter.grad, expected, rtol=1e-8, atol=1e-12)


def check_paper_input(model_name: str, heads: dict[str, HeadSpec], shape: tuple[int, ...], seed: int) -> None:
    """:func:`check_forward_backward` on a registered model built for ``heads``, with a seeded random input."""
    from taskbalance.models import MODELS

    torch.manual_seed(seed)
    check_forward_backward(MODELS.create(model_name, heads=heads), torch.randn(*shape), heads)
