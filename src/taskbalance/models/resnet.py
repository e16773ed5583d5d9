"""ResNets written for taskbalance (no torchvision), and the CelebA model ``resnet18`` with one linear head per task.

He et al. 2016, "Deep Residual Learning for Image Recognition" (CVPR): a 7×7/2 stem conv, 3×3/2 max pool, and four
stages of residual blocks with 64, 128, 256, 512 base widths. The Bottleneck puts its stride on the 3×3 conv
("ResNet v1.5", the variant whose ImageNet weights are commonly distributed). Module names follow the widely used
torchvision state-dict layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ...), so ImageNet
weights saved in that layout load directly (:mod:`taskbalance.models.pretrained`).

Parameter counts (measured, checked by hand in the tests): ResNet-18 without ``fc`` 11,176,512 (11,689,512 with a
1000-class fc); ResNet-50 without ``fc`` 23,508,032 (25,557,032 with it).

Example:
    >>> import torch
    >>> from taskbalance.types import HeadSpec
    >>> model = build_resnet18({"smiling": HeadSpec(1, dense=False), "young": HeadSpec(1, dense=False)})
    >>> out = model(torch.zeros(2, 3, 64, 64))
    >>> {name: tuple(value.shape) for name, value in out.items()}
    {'smiling': (2, 1), 'young': (2, 1)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor, nn

from taskbalance.models.base import MultiTaskModel
from taskbalance.models.heads import check_heads
from taskbalance.models.pretrained import load_resnet_weights
from taskbalance.models.registry import MODELS
from taskbalance.types import HeadSpec


class BasicBlock(nn.Module):
    """``ReLU(x' + BN(Conv3×3(ReLU(BN(Conv3×3_stride(x))))))``, ``x'`` = x or its 1×1-conv projection.

    Used by ResNet-18/34; ``expansion = 1`` (output channels = ``width``).
    """

    expansion = 1

    def __init__(
        self, in_channels: int, width: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        if dilation != 1:
            raise ValueError(f"BasicBlock supports dilation 1 only, got {dilation}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """``ReLU(x' + BN(Conv1×1(ReLU(BN(Conv3×3_stride,dilation(ReLU(BN(Conv1×1(x)))))))))``, 4× expansion.

    Used by ResNet-50/101; the stride sits on the 3×3 conv (ResNet v1.5) and ``dilation`` enlarges its receptive
    field without shrinking the map (Chen et al. 2017, DeepLab).
    """

    expansion = 4

    def __init__(
        self, in_channels: int, width: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet trunk without its classifier: returns the four stage outputs ``(layer1, ..., layer4)``.

    Strides: layer1 is at 1/4 of the input, layer2 1/8, layer3 1/16, layer4 1/32. ``dilate_layer3`` /
    ``dilate_layer4`` replace that stage's stride 2 by stride 1 and multiply the dilation by 2 instead (output
    stride 16 or 8, as in DeepLab); the first block of a dilated stage keeps the previous dilation, the later
    blocks use the new one.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        blocks_per_stage: e.g. ``(2, 2, 2, 2)`` for ResNet-18, ``(3, 4, 6, 3)`` for ResNet-50.
        in_channels: input image channels (3 for RGB; ImageNet weights need 3).
        dilate_layer3: stride 1 + dilation in layer3.
        dilate_layer4: stride 1 + dilation in layer4.

    Example:
        >>> import torch
        >>> trunk = ResNet(BasicBlock, (2, 2, 2, 2))
        >>> [tuple(f.shape) for f in trunk(torch.zeros(1, 3, 64, 64))]
        [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: Sequence[int],
        in_channels: int = 3,
        *,
        dilate_layer3: bool = False,
        dilate_layer4: bool = False,
    ) -> None:
        super().__init__()
        if len(blocks_per_stage) != 4 or min(blocks_per_stage) < 1:
            raise ValueError(f"ResNet needs four stages of >= 1 block, got {tuple(blocks_per_stage)}")
        if in_channels < 1:
            raise ValueError(f"ResNet: in_channels must be >= 1, got {in_channels}")
        if dilate_layer3 and not dilate_layer4:
            raise ValueError("ResNet: dilating layer3 but not layer4 would make layer4 downsample a dilated map")
        self.block = block
        self.channels_in = 64
        self.dilation = 1
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_stage(64, blocks_per_stage[0], stride=1, dilate=False)
        self.layer2 = self._make_stage(128, blocks_per_stage[1], stride=2, dilate=False)
        self.layer3 = self._make_stage(256, blocks_per_stage[2], stride=2, dilate=dilate_layer3)
        self.layer4 = self._make_stage(512, blocks_per_stage[3], stride=2, dilate=dilate_layer4)
        self.out_channels = 512 * block.expansion
        self.low_level_channels = 64 * block.expansion
        self._initialise()

    def _make_stage(self, width: int, num_blocks: int, *, stride: int, dilate: bool) -> nn.Sequential:
        first_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        out_channels = width * self.block.expansion
        downsample = None
        if stride != 1 or self.channels_in != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self.channels_in, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        blocks = [self.block(self.channels_in, width, stride, first_dilation, downsample)]
        self.channels_in = out_channels
        blocks += [self.block(out_channels, width, 1, self.dilation) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def _initialise(self) -> None:
        # He-normal (fan_out) for ReLU networks trained from scratch (He et al. 2015); BN starts as the identity.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return f1, f2, f3, self.layer4(f3)


def resnet18(in_channels: int = 3) -> ResNet:
    """The ResNet-18 trunk: BasicBlocks ``(2, 2, 2, 2)``, 512 output channels, 11,176,512 parameters."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels)


def resnet50(in_channels: int = 3, *, output_stride: int = 32) -> ResNet:
    """The ResNet-50 trunk: Bottlenecks ``(3, 4, 6, 3)``, 2048 output channels, 23,508,032 parameters.

    Args:
        in_channels: input channels.
        output_stride: 32 (classification), 16 (layer4 dilated) or 8 (layer3 and layer4 dilated).
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"resnet50: output_stride must be 8, 16 or 32, got {output_stride}")
    return ResNet(
        Bottleneck, (3, 4, 6, 3), in_channels, dilate_layer3=output_stride == 8, dilate_layer4=output_stride <= 16
    )


class PooledResNetEncoder(nn.Module):
    """Shared encoder ``x ↦ mean_{h,w} layer4(x)``: the global-average-pooled ResNet feature vector ``[B, C]``."""

    def __init__(self, trunk: ResNet) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_features = trunk.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(x)[-1].mean(dim=(2, 3))


@MODELS.register("resnet18")
def build_resnet18(
    heads: Mapping[str, HeadSpec], *, in_channels: int = 3, pretrained: str | Path | None = None
) -> MultiTaskModel:
    """ResNet-18 shared encoder (global average pool → 512-d) with one linear layer per task (CelebA).

    Every head must be a vector head (``dense=False``); for CelebA each of the 40 attributes is a task with
    ``HeadSpec(1, dense=False)`` whose output is one logit. ``pretrained`` names a local file with ImageNet weights
    in torchvision's ResNet-18 state-dict layout (``fc.*`` is ignored); see :mod:`taskbalance.models.pretrained`.
    Parameters: 11,176,512 shared + 513 per one-logit head (11,197,032 for CelebA's 40 heads).
    """
    check_heads(heads, "resnet18", dense=False)
    trunk = resnet18(in_channels)
    if pretrained is not None:
        load_resnet_weights(trunk, pretrained)
    encoder = PooledResNetEncoder(trunk)
    linear_heads = {name: nn.Linear(encoder.out_features, spec.out_channels) for name, spec in heads.items()}
    return MultiTaskModel(encoder, linear_heads)


__all__ = ["BasicBlock", "Bottleneck", "PooledResNetEncoder", "ResNet", "build_resnet18", "resnet18", "resnet50"]
