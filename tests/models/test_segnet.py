"""MTAN-style multi-task SegNet: layout counted by hand, shapes, unpooling, forward/backward at dataset sizes."""

import pytest
import torch
from dense_model_checks import check_paper_input
from torch import nn

from taskbalance.models import MODELS
from taskbalance.models.segnet import SegNetEncoderDecoder
from taskbalance.types import HeadSpec

NYUV2_HEADS = {"segmentation": HeadSpec(13, dense=True), "depth": HeadSpec(1, dense=True),
               "normal": HeadSpec(3, dense=True)}
CITYSCAPES_HEADS = {"segmentation": HeadSpec(7, dense=True), "depth": HeadSpec(1, dense=True)}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_bn(cin: int, cout: int) -> int:
    return cin * cout * 9 + cout + 2 * cout  # 3×3 weights, bias, BN scale and shift


def test_parameter_count_matches_the_vgg16_layout_counted_by_hand() -> None:
    encoder = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    decoder = [(512, 512), (512, 512), (512, 512), (512, 256), (256, 256), (256, 256),
               (256, 128), (128, 128), (128, 128), (128, 64), (64, 64), (64, 64), (64, 64)]
    shared = sum(conv_bn(cin, cout) for cin, cout in encoder + decoder)
    model = MODELS.create("segnet", heads=NYUV2_HEADS)
    assert count(model.encoder) == shared == 24_943_296
    for name, spec in NYUV2_HEADS.items():
        c = spec.out_channels
        assert count(model.heads[name]) == 64 * 64 * 9 + 64 + 64 * c + c
    assert count(model) == 25_055_185
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == encoder + decoder


def test_decoder_unpools_to_the_positions_of_the_encoder_maxima() -> None:
    torch.manual_seed(0)
    net = SegNetEncoderDecoder().eval()
    pool_positions: list[torch.Tensor] = []

    def record_pool_output(_module: nn.Module, _inputs: object, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        pool_positions.append(output[1])

    def check_unpool(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        values, indices = inputs[0], inputs[1]
        flat = output.flatten(2)
        # Each pooled value lands at its stored argmax index; every other position is zero.
        assert torch.equal(flat.gather(2, indices.flatten(2)), values.flatten(2))
        assert int((flat != 0).sum()) <= values.numel()

    net.pool.register_forward_hook(record_pool_output)
    net.unpool.register_forward_hook(check_unpool)
    with torch.no_grad():
        net(torch.randn(1, 3, 64, 64))
    assert len(pool_positions) == 5


@pytest.mark.parametrize(("height", "width"), [(32, 32), (33, 47)])
def test_representation_has_the_input_resolution_even_for_sizes_not_divisible_by_32(height: int, width: int) -> None:
    net = SegNetEncoderDecoder(in_channels=4).eval()
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 4, height, width)).shape) == (1, 64, height, width)


def test_nyuv2_shapes_forward_backward() -> None:
    check_paper_input("segnet", NYUV2_HEADS, (1, 3, 288, 384), seed=0)


def test_cityscapes_shapes_forward_backward() -> None:
    check_paper_input("segnet", CITYSCAPES_HEADS, (2, 3, 128, 256), seed=1)


def test_head_with_a_size_is_resized() -> None:
    model = MODELS.create("segnet", heads={"depth": HeadSpec(1, dense=True, size=(16, 24))}).eval()
    with torch.no_grad():
        assert tuple(model(torch.zeros(1, 3, 32, 48))["depth"].shape) == (1, 1, 16, 24)


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="segnet: head 'smiling' has dense=False"):
        MODELS.create("segnet", heads={"smiling": HeadSpec(1, dense=False)})
    with pytest.raises(ValueError, match="pretrained weights are not supported"):
        MODELS.create("segnet", heads=CITYSCAPES_HEADS, pretrained="vgg16.pth")
    with pytest.raises(ValueError, match=r"H, W >= 32, got \(1, 3, 16, 64\)"):
        MODELS.create("segnet", heads=CITYSCAPES_HEADS)(torch.zeros(1, 3, 16, 64))
    with pytest.raises(TypeError, match="head 'depth' must be a HeadSpec"):
        MODELS.create("segnet", heads={"depth": 1})
