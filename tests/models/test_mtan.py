"""SegNet-MTAN: parameter layout, forward/backward at NYUv2 size, the 20-feature representation, gradient methods."""

from __future__ import annotations

import pytest
import torch
from dense_model_checks import check_forward_backward, check_representation_step_is_exact
from torch import nn

from taskbalance import methods
from taskbalance.models import MODELS
from taskbalance.models.mtan import MTAN, split_features
from taskbalance.types import HeadSpec

NYUV2_HEADS = {"segmentation": HeadSpec(13, dense=True), "depth": HeadSpec(1, dense=True),
               "normals": HeadSpec(3, dense=True)}
WIDTHS = (64, 128, 256, 512, 512)


def count(parameters: object) -> int:
    return sum(p.numel() for p in parameters)  # type: ignore[attr-defined]


def attention(cin: int, c: int) -> int:
    return (cin * c + c + 2 * c) + (c * c + c + 2 * c)  # two 1×1 convs with bias, each followed by BN


def conv_bn(cin: int, cout: int) -> int:
    return cin * cout * 9 + cout + 2 * cout


def test_parameter_count_matches_the_layout_counted_by_hand() -> None:
    model = MODELS.create("mtan", heads=NYUV2_HEADS)
    assert isinstance(model, MTAN)
    decoder_out = [512, 256, 128, 64, 64]  # decoder stages deepest first
    decoder_unpooled = [512, 512, 256, 128, 64]
    per_task = sum(attention(w * (1 if j == 0 else 2), w) for j, w in enumerate(WIDTHS))
    per_task += sum(attention(u + o, o) for u, o in zip(decoder_unpooled, decoder_out, strict=True))
    blocks = sum(conv_bn(WIDTHS[j], WIDTHS[min(j + 1, 4)]) for j in range(5))
    blocks += sum(conv_bn(cin, cout) for cin, cout in zip([512, *decoder_out[:-1]], decoder_out, strict=True))
    heads = sum(64 * 64 * 9 + 64 + 64 * s.out_channels + s.out_channels for s in NYUV2_HEADS.values())
    assert count(model.encoder.parameters()) == 24_943_296  # exactly the SegNet's shared part
    assert count(model.attention_block_parameters()) == blocks == 10_220_160
    for name in NYUV2_HEADS:
        assert count(model.task_parameters(name)) - count(model.heads[name].head.parameters()) == per_task == 2_984_576
    assert count(model.parameters()) == 24_943_296 + blocks + 3 * per_task + heads == 44_229_073


def test_nyuv2_size_forward_gives_every_head_its_full_resolution_output() -> None:
    # Forward only at 288×384 (a backward there takes minutes on 2 CPU cores); backward passes are checked at a
    # Cityscapes-like size below and on small inputs by the gradient-method tests.
    torch.manual_seed(0)
    model = MODELS.create("mtan", heads=NYUV2_HEADS).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 288, 384))
    assert {name: tuple(value.shape) for name, value in out.items()} == {
        name: (1, spec.out_channels, 288, 384) for name, spec in NYUV2_HEADS.items()
    }
    assert all(torch.isfinite(value).all() for value in out.values())


def test_forward_backward_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = MODELS.create("mtan", heads=NYUV2_HEADS)
    check_forward_backward(model, torch.randn(2, 3, 64, 96), NYUV2_HEADS)


def small_problem(shared: str = "segnet") -> tuple[MTAN, list[torch.Tensor], tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    heads = {"segmentation": HeadSpec(3, dense=True), "depth": HeadSpec(1, dense=True)}
    model = MODELS.create("mtan", heads=heads, shared=shared).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    targets = torch.randint(0, 3, (2, 32, 32))
    rep = model.shared(x)
    out = model.decode(rep)
    losses = [nn.functional.cross_entropy(out["segmentation"], targets), out["depth"].abs().mean()]
    return model, losses, rep


def test_representation_mode_step_equals_the_weighted_parameter_gradients() -> None:
    # Exactness of the 20-feature representation: the one backward of the aggregated feature gradients through the
    # SegNet must equal Σ_k w_k ∇_θ L_k (a representation whose features feed one another would count paths twice).
    model, losses, rep = small_problem()
    check_representation_step_is_exact(model, losses, rep)


@pytest.mark.parametrize("shared", ["segnet", "all_but_heads"])
def test_parameters_mode_step_fills_every_gradient(shared: str) -> None:
    model, losses, rep = small_problem(shared)
    methods.create("mgda", 2).step(losses, shared_parameters=model.shared_parameters(), representation=rep)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    shared_ids = {id(p) for p in model.shared_parameters()}
    heads_ids = {id(p) for name in ("segmentation", "depth") for p in model.task_parameters(name)}
    assert len(shared_ids | heads_ids) == len(shared_ids) + len(heads_ids)  # disjoint groups
    if shared == "all_but_heads":
        assert shared_ids | heads_ids == {id(p) for p in model.parameters()}


def test_representation_mode_with_attention_in_the_shared_part_is_refused() -> None:
    model, losses, rep = small_problem("all_but_heads")
    method = methods.create("mgda", 2, mode="representation")
    with pytest.raises(ValueError, match="outside the representation; use mode='parameters'"):
        method.step(losses, shared_parameters=model.shared_parameters(), representation=rep)


def test_bad_representation_and_options_are_refused() -> None:
    with pytest.raises(ValueError, match="mtan: the representation must be the 20 SegNet stage features, got 3"):
        split_features([torch.zeros(1)] * 3)
    with pytest.raises(ValueError, match="mtan: shared must be one of"):
        MODELS.create("mtan", heads=NYUV2_HEADS, shared="encoder")
    with pytest.raises(ValueError, match="mtan: pretrained weights are not supported"):
        MODELS.create("mtan", heads=NYUV2_HEADS, pretrained="weights.pt")
    with pytest.raises(ValueError, match="mtan: head 'label' has dense=False"):
        MODELS.create("mtan", heads={"label": HeadSpec(3, dense=False)})
