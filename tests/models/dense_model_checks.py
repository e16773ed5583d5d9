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


def check_paper_input(model_name: str, heads: dict[str, HeadSpec], shape: tuple[int, ...], seed: int) -> None:
    """:func:`check_forward_backward` on a registered model built for ``heads``, with a seeded random input."""
    from taskbalance.models import MODELS

    torch.manual_seed(seed)
    check_forward_backward(MODELS.create(model_name, heads=heads), torch.randn(*shape), heads)
