"""DeepLabV3+ on a dilated ResNet-50: head sizes counted by hand, ASPP rates, strides, forward/backward.

Both datasets are tested at their real sizes: NYUv2's 288×384 at output stride 8 takes about 15 s for one
forward/backward of a batch of 2 on one CPU thread (the slowest model test); Cityscapes runs at 128×256.
"""

import pytest
import torch
from dense_model_checks import check_paper_input, check_representation_step_is_exact
from torch import nn

from taskbalance.models import MODELS
from taskbalance.models.deeplab import ASPP
from taskbalance.types import HeadSpec

NYUV2_HEADS = {"segmentation": HeadSpec(13, dense=True), "depth": HeadSpec(1, dense=True),
               "normal": HeadSpec(3, dense=True)}
CITYSCAPES_HEADS = {"segmentation": HeadSpec(7, dense=True), "depth": HeadSpec(1, dense=True)}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_bn(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + 2 * cout  # no conv bias: BatchNorm's shift replaces it


def test_head_parameter_count_matches_aspp_and_decoder_counted_by_hand() -> None:
    aspp = conv_bn(2048, 256, 1) + 3 * conv_bn(2048, 256, 3) + conv_bn(2048, 256, 1) + conv_bn(5 * 256, 256, 1)
    decoder = conv_bn(256, 48, 1) + conv_bn(256 + 48, 256, 3) + conv_bn(256, 256, 3)
    model = MODELS.create("deeplabv3plus", heads=CITYSCAPES_HEADS)
    assert count(model.encoder) == 23_508_032
    for name, spec in CITYSCAPES_HEADS.items():
        head = model.heads[name]
        assert count(head.aspp) == aspp == 15_535_104
        assert count(head) == aspp + decoder + 256 * spec.out_channels + spec.out_channels
    assert decoder == 1_303_648


@pytest.mark.parametrize(("output_stride", "rates"), [(8, (12, 24, 36)), (16, (6, 12, 18))])
def test_representation_strides_and_default_aspp_rates(output_stride: int, rates: tuple[int, ...]) -> None:
    model = MODELS.create("deeplabv3plus", heads={"depth": HeadSpec(1, dense=True)}, output_stride=output_stride)
    atrous = [m.dilation[0] for m in model.heads["depth"].aspp.modules() if isinstance(m, nn.Conv2d)
              and m.kernel_size == (3, 3)]
    assert tuple(atrous) == rates
    model.eval()
    with torch.no_grad():
        high, low = model.shared(torch.zeros(1, 3, 64, 96))
    assert tuple(high.shape) == (1, 2048, 64 // output_stride, 96 // output_stride)
    assert tuple(low.shape) == (1, 256, 16, 24)


def test_aspp_is_the_projection_of_its_concatenated_branches() -> None:
    torch.manual_seed(0)
    aspp = ASPP(8, rates=(1, 2), out_channels=4).eval()
    x = torch.randn(2, 8, 6, 5)
    with torch.no_grad():
        pooled = aspp.image_pool(x)
        assert tuple(pooled.shape) == (2, 4, 1, 1)
        branches = [branch(x) for branch in aspp.branches] + [pooled.expand(2, 4, 6, 5)]
        expected = aspp.project(torch.cat(branches, dim=1))
        assert torch.allclose(aspp(x), expected)
        # The image-pooling branch sees the spatial mean only, so it is constant over the map.
        assert torch.allclose(branches[-1], branches[-1][..., :1, :1].expand_as(branches[-1]))


def test_cityscapes_shapes_forward_backward_output_stride_8() -> None:
    check_paper_input("deeplabv3plus", CITYSCAPES_HEADS, (2, 3, 128, 256), seed=0)


def test_nyuv2_shapes_forward_backward_output_stride_8() -> None:
    check_paper_input("deeplabv3plus", NYUV2_HEADS, (2, 3, 288, 384), seed=1)


def test_custom_rates_and_head_size() -> None:
    heads = {"depth": HeadSpec(1, dense=True, size=(10, 12))}
    model = MODELS.create("deeplabv3plus", heads=heads, output_stride=16, aspp_rates=[2, 4]).eval()
    assert model.heads["depth"].aspp.rates == (2, 4)
    with torch.no_grad():
        assert tuple(model(torch.zeros(1, 3, 32, 48))["depth"].shape) == (1, 1, 10, 12)


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="deeplabv3plus: head 'smiling' has dense=False"):
        MODELS.create("deeplabv3plus", heads={"smiling": HeadSpec(1, dense=False)})
    with pytest.raises(ValueError, match="output_stride must be 8 or 16, got 32"):
        MODELS.create("deeplabv3plus", heads=CITYSCAPES_HEADS, output_stride=32)
    with pytest.raises(ValueError, match="atrous rates must be"):
        MODELS.create("deeplabv3plus", heads=CITYSCAPES_HEADS, aspp_rates=[0, 6])
    model = MODELS.create("deeplabv3plus", heads=CITYSCAPES_HEADS, output_stride=16)
    with pytest.raises(ValueError, match=r"divisible by 4, got \(1, 3, 30, 64\)"):
        model(torch.zeros(1, 3, 30, 64))


def test_representation_mode_step_is_exact_although_the_skip_feature_feeds_the_deep_one() -> None:
    torch.manual_seed(0)
    heads = {"segmentation": HeadSpec(3, dense=True), "depth": HeadSpec(1, dense=True)}
    model = MODELS.create("deeplabv3plus", heads=heads).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    rep = model.shared(x)
    out = model.decode(rep)
    losses = [nn.functional.cross_entropy(out["segmentation"], torch.randint(0, 3, (2, 32, 32))),
              out["depth"].abs().mean()]
    check_representation_step_is_exact(model, losses, rep)
