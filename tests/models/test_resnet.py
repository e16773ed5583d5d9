"""ResNet trunks and the CelebA model ``resnet18``: sizes worked out by hand, block maths, forward/backward."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from taskbalance.cli import main
from taskbalance.models import MODELS
from taskbalance.models.resnet import BasicBlock, Bottleneck, build_resnet18, resnet18, resnet50
from taskbalance.types import HeadSpec


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k


def bn(c: int) -> int:
    return 2 * c


def test_resnet18_has_11_176_512_parameters_without_fc_counted_layer_by_layer() -> None:
    stem = conv(3, 64, 7) + bn(64)
    layer1 = 2 * 2 * (conv(64, 64, 3) + bn(64))
    total = stem + layer1
    for cin, cout in [(64, 128), (128, 256), (256, 512)]:
        first = conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout) + conv(cin, cout, 1) + bn(cout)
        second = 2 * (conv(cout, cout, 3) + bn(cout))
        total += first + second
    assert total == 11_176_512
    assert count(resnet18()) == total
    assert total + 512 * 1000 + 1000 == 11_689_512  # the published size with ImageNet's 1000-class fc


def test_resnet50_has_23_508_032_parameters_without_fc_at_every_output_stride() -> None:
    total = conv(3, 64, 7) + bn(64)
    cin = 64
    for width, blocks in [(64, 3), (128, 4), (256, 6), (512, 3)]:
        for index in range(blocks):
            total += conv(cin, width, 1) + bn(width) + conv(width, width, 3) + bn(width)
            total += conv(width, 4 * width, 1) + bn(4 * width)
            if index == 0:
                total += conv(cin, 4 * width, 1) + bn(4 * width)
            cin = 4 * width
    assert total == 23_508_032
    assert total + 2048 * 1000 + 1000 == 25_557_032  # the published ResNet-50 size
    for output_stride in (32, 16, 8):
        assert count(resnet50(output_stride=output_stride)) == total


def test_state_dict_uses_torchvision_names() -> None:
    keys = list(resnet18().state_dict())
    for name in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer2.0.downsample.1.running_var", "layer4.1.bn2.num_batches_tracked"]:
        assert name in keys
    # 20 convs (1 stem + 16 in blocks + 3 projections) and 20 BNs with weight, bias, mean, var, counter.
    assert len(keys) == 20 + 20 * 5
    assert "layer3.5.conv3.weight" in resnet50().state_dict()


@pytest.mark.parametrize(("output_stride", "layer3", "layer4"), [(32, (1, 1), (1, 1)), (16, (1, 1), (1, 2)),
                                                                 (8, (1, 2), (2, 4))])
def test_dilation_replaces_stride(output_stride: int, layer3: tuple[int, int], layer4: tuple[int, int]) -> None:
    trunk = resnet50(output_stride=output_stride).eval()
    # The first block of a dilated stage keeps the previous dilation; the later blocks use the new one.
    assert (trunk.layer3[0].conv2.dilation[0], trunk.layer3[1].conv2.dilation[0]) == layer3
    assert (trunk.layer4[0].conv2.dilation[0], trunk.layer4[2].conv2.dilation[0]) == layer4
    with torch.no_grad():
        features = trunk(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in features[:2]] == [(16, 24), (8, 12)]
    assert tuple(features[3].shape) == (1, 2048, 64 // output_stride, 96 // output_stride)


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_block_with_a_silent_residual_branch_is_relu_of_its_input(block: type[nn.Module]) -> None:
    torch.manual_seed(0)
    unit = block(256, 256 // block.expansion).eval()  # type: ignore[attr-defined]
    last_bn = unit.bn3 if block is Bottleneck else unit.bn2
    nn.init.zeros_(last_bn.weight)  # residual branch = 0, so y = ReLU(x + 0)
    x = torch.randn(2, 256, 5, 7)
    with torch.no_grad():
        assert torch.equal(unit(x), torch.relu(x))


def test_projection_shortcut_downsamples_by_strided_1x1_conv() -> None:
    torch.manual_seed(0)
    trunk = resnet18().eval()
    unit = trunk.layer2[0]
    nn.init.zeros_(unit.bn2.weight)
    nn.init.zeros_(unit.bn2.bias)
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        expected = torch.relu(unit.downsample[1](nn.functional.conv2d(x, unit.downsample[0].weight, stride=2)))
        assert torch.allclose(unit(x), expected)


def test_celeba_forward_backward_40_binary_heads() -> None:
    torch.manual_seed(0)
    heads = {f"attribute_{i}": HeadSpec(1, dense=False) for i in range(40)}
    model = MODELS.create("resnet18", heads=heads)
    assert count(model) == 11_176_512 + 40 * (512 + 1)
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert list(out) == list(heads) and all(tuple(v.shape) == (2, 1) for v in out.values())
    representation = model.shared(x)
    assert tuple(representation.shape) == (2, 512)
    assert torch.equal(representation, model.encoder.trunk(x)[-1].mean(dim=(2, 3)))
    for name, value in model.decode(representation).items():
        assert torch.equal(value, out[name])
    weights = torch.randn(40)
    sum(w * v.mean() for w, v in zip(weights, out.values(), strict=True)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_resnet18_refuses_dense_heads_and_unknown_options() -> None:
    with pytest.raises(ValueError, match="head 'depth' has dense=True"):
        MODELS.create("resnet18", heads={"a": HeadSpec(1, dense=False), "depth": HeadSpec(1, dense=True)})
    with pytest.raises(TypeError):
        MODELS.create("resnet18", heads={"a": HeadSpec(1, dense=False)}, widht=2)
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32, got 4"):
        resnet50(output_stride=4)


def test_in_channels_changes_only_the_stem() -> None:
    model = MODELS.create("resnet18", heads={"a": HeadSpec(3, dense=False)}, in_channels=1)
    assert tuple(model.encoder.trunk.conv1.weight.shape) == (64, 1, 7, 7)
    assert tuple(model(torch.zeros(2, 1, 32, 32))["a"].shape) == (2, 3)


CELEBA_40 = {f"attribute_{i}": HeadSpec(1, dense=False) for i in range(40)}


def test_the_cifar_stem_resnet18_has_sener_and_koltun_s_sizes_counted_by_hand() -> None:
    # Only the stem conv differs from the ImageNet ResNet-18: 3×3 instead of 7×7 kernels.
    shared = 11_176_512 - conv(3, 64, 7) + conv(3, 64, 3)
    assert shared == 11_168_832
    assert count(resnet18(stem="cifar")) == shared
    model = MODELS.create("resnet18", heads=CELEBA_40, stem="cifar")
    # One Linear(2048, 1) per attribute: 512 channels × a 2×2 grid, as MGDA's Linear(2048, ·) heads.
    assert count(model) == shared + 40 * (2048 + 1) == 11_250_792
    trunk = model.encoder.trunk
    assert (trunk.conv1.kernel_size, trunk.conv1.stride, trunk.conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(trunk.maxpool, nn.Identity)


def test_the_cifar_stem_feature_is_mgda_s_avg_pool2d_4_of_the_8x8_layer4_map() -> None:
    torch.manual_seed(0)
    model = build_resnet18({"smiling": HeadSpec(1, dense=False), "young": HeadSpec(3, dense=False)}, stem="cifar")
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        stages = model.encoder.trunk(x)
        representation = model.shared(x)
        out = model(x)
    assert [tuple(f.shape[1:]) for f in stages] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8)]
    # Sener & Koltun 2018's encoder: F.avg_pool2d(layer4, 4) and view(B, -1) (channel-major flattening).
    expected = F.avg_pool2d(stages[-1], 4).view(2, -1)
    assert tuple(representation.shape) == (2, 2048)
    torch.testing.assert_close(representation, expected, rtol=1e-6, atol=1e-6)
    assert {name: tuple(v.shape) for name, v in out.items()} == {"smiling": (2, 1), "young": (2, 3)}
    # Any other size still gives a 2048-d feature for the same heads.
    with torch.no_grad():
        assert tuple(model.shared(torch.zeros(2, 3, 48, 80)).shape) == (2, 2048)


def test_the_cifar_stem_model_trains_every_parameter() -> None:
    torch.manual_seed(0)
    model = MODELS.create("resnet18", heads=CELEBA_40, stem="cifar")
    out = model(torch.randn(2, 3, 64, 64))
    weights = torch.randn(40)
    sum(w * v.mean() for w, v in zip(weights, out.values(), strict=True)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_the_default_stem_is_the_imagenet_network() -> None:
    torch.manual_seed(3)
    default = MODELS.create("resnet18", heads=CELEBA_40)
    torch.manual_seed(3)
    explicit = MODELS.create("resnet18", heads=CELEBA_40, stem="imagenet")
    assert tuple(default.encoder.trunk.conv1.weight.shape) == (64, 3, 7, 7)
    assert isinstance(default.encoder.trunk.maxpool, nn.MaxPool2d)
    assert default.heads["attribute_0"].in_features == 512
    for (key, a), (other, b) in zip(default.state_dict().items(), explicit.state_dict().items(), strict=True):
        assert key == other and torch.equal(a, b), key


def test_an_unknown_stem_and_imagenet_weights_for_the_cifar_stem_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stem must be one of 'imagenet', 'cifar', got 'mgda'"):
        MODELS.create("resnet18", heads=CELEBA_40, stem="mgda")
    with pytest.raises(ValueError, match="stem must be one of"):
        resnet18(stem="tiny")
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="pretrained ImageNet weights need stem='imagenet', got stem='cifar'"):
        MODELS.create("resnet18", heads=CELEBA_40, stem="cifar", pretrained=path)


def test_the_stem_is_a_model_option_of_the_celeba_preset_s_dry_run() -> None:
    args = ["bench", "--preset", "celeba-resnet18", "--dry-run", "--model-option", "stem=cifar"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "FLOPs: 4.44 GFLOP per sample forward" in result.output
