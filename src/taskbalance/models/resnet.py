"""ResNets written for taskbalance (no torchvision), and the CelebA model ``resnet18`` with one linear head per task.

He et al. 2016, "Deep Residual Learning for Image Recognition" (CVPR): a 7×7/2 stem conv, 3×3/2 max pool, and four
stages of residual blocks with 64, 128, 256, 512 base widths. The Bottleneck puts its stride on the 3×3 conv
("ResNet v1.5", the variant whose ImageNet weights are commonly distributed). Module names follow the widely used
torchvision state-dict layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ...), so ImageNet
weights saved in that layout load directly (:mod:`taskbalance.models.pretrained`).

Parameter counts (measured, checked by hand in the tests): ResNet-18 without ``fc`` 11,176,512 (11,689,512 with a
1000-class fc); ResNet-50 without ``fc`` 23,508,032 (25,557,032 with it).

Two stems (``stem=``): ``"imagenet"`` (default) is He et al.'s 7×7/2 conv + 3×3/2 max pool, so layer4 sits at 1/32
of the input and the CelebA encoder averages it globally to 512 values. ``"cifar"`` is the small-image stem of Sener &
Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization" (NeurIPS; MGDA), whose CelebA ResNet-18 has a
3×3/1 conv without max pool (layer4 at 1/8, 8×8 at 64×64) and average-pools layer4 in 4×4 windows to a 2×2 grid,
i.e. a 2048-d feature (``512·2·2``) read by one ``Linear(2048, ·)`` per attribute. Here that pooling is an adaptive
average pool to 2×2, identical to theirs at 64×64 and still 2048-d at other sizes.

Example:
    >>> import torch
    >>> from taskbalance.types import HeadSpec
    >>> model = build_resnet18({"smiling": HeadSpec(1, dense=False), "young": HeadSpec(1, dense=False)})
    >>> out = model(torch.zeros(2, 3, 64, 64))
    >>> {name: tuple(value.shape) for name, value in out.items()}
    {'smiling': (2, 1), 'young': (2, 1)}
    >>> mgda = build_resnet18({"smiling": HeadSpec(1, dense=False)}, stem="cifar")
    >>> tuple(mgda.shared(torch.zeros(2, 3, 64, 64)).shape), mgda.heads["smiling"].in_features
    ((2, 2048), 2048)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from taskbalance.models.base import MultiTaskModel
from taskbalance.models.heads import check_heads
from taskbalance.models.pretrained import load_resnet_weights
from taskbalance.models.registry import MODELS
from taskbalance.types import HeadSpec

STEMS: tuple[str, ...] = ("imagenet", "cifar")
# Side of the grid the CelebA encoder average-pools layer4 to, per stem: global pooling after the ImageNet stem;
# Sener & Koltun's 2×2 (their avg_pool2d(·, 4) on the 8×8 map of a 64×64 input) after the CIFAR-style stem.
POOLED_GRID: dict[str, int] = {"imagenet": 1, "cifar": 2}


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

    Strides (``stem="imagenet"``): layer1 is at 1/4 of the input, layer2 1/8, layer3 1/16, layer4 1/32; with
    ``stem="cifar"`` (3×3/1 conv, no max pool; Sener & Koltun 2018) every stage is 4× larger: 1/1 to 1/8.
    ``dilate_layer3`` /
    ``dilate_layer4`` replace that stage's stride 2 by stride 1 and multiply the dilation by 2 instead (output
    stride 16 or 8, as in DeepLab); the first block of a dilated stage keeps the previous dilation, the later
    blocks use the new one.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        blocks_per_stage: e.g. ``(2, 2, 2, 2)`` for ResNet-18, ``(3, 4, 6, 3)`` for ResNet-50.
        in_channels: input image channels (3 for RGB; ImageNet weights need 3).
        stem: ``"imagenet"`` (7×7/2 conv + 3×3/2 max pool) or ``"cifar"`` (3×3/1 conv, no pooling). Module names
            are the same (``conv1``, ``bn1``); only ``conv1.weight``'s kernel size differs.
        dilate_layer3: stride 1 + dilation in layer3.
        dilate_layer4: stride 1 + dilation in layer4.

    Example:
        >>> import torch
        >>> trunk = ResNet(BasicBlock, (2, 2, 2, 2))
        >>> [tuple(f.shape) for f in trunk(torch.zeros(1, 3, 64, 64))]
        [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
        >>> [tuple(f.shape) for f in ResNet(BasicBlock, (2, 2, 2, 2), stem="cifar")(torch.zeros(1, 3, 64, 64))]
        [(1, 64, 64, 64), (1, 128, 32, 32), (1, 256, 16, 16), (1, 512, 8, 8)]
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: Sequence[int],
        in_channels: int = 3,
        *,
        stem: str = "imagenet",
        dilate_layer3: bool = False,
        dilate_layer4: bool = False,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"ResNet: stem must be one of {', '.join(map(repr, STEMS))}, got {stem!r}")
        if len(blocks_per_stage) != 4 or min(blocks_per_stage) < 1:
            raise ValueError(f"ResNet needs four stages of >= 1 block, got {tuple(blocks_per_stage)}")
        if in_channels < 1:
            raise ValueError(f"ResNet: in_channels must be >= 1, got {in_channels}")
        if dilate_layer3 and not dilate_layer4:
            raise ValueError("ResNet: dilating layer3 but not layer4 would make layer4 downsample a dilated map")
        self.block = block
        self.channels_in = 64
        self.dilation = 1
        self.stem = stem
        maxpool: nn.Module
        if stem == "imagenet":
            conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            # Small images (CIFAR, 64×64 CelebA) keep full resolution into layer1 instead of losing 4× at once.
            conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            maxpool = nn.Identity()
        # Registered in the original order, so the default network's module list is what it always was.
        self.conv1 = conv1
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = maxpool
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


def resnet18(in_channels: int = 3, *, stem: str = "imagenet") -> ResNet:
    """The ResNet-18 trunk: BasicBlocks ``(2, 2, 2, 2)``, 512 output channels.

    Parameters: 11,176,512 with the ImageNet stem, 11,168,832 with ``stem="cifar"`` (a 3×3 instead of 7×7 stem conv:
    64·3·9 instead of 64·3·49 weights).
    """
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, stem=stem)


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
    """Shared encoder ``x ↦ flatten(AvgPool_{g×g}(layer4(x)))``: a ``[B, C·g²]`` ResNet feature vector.

    ``grid=1`` (default) is the global average ``mean_{h,w} layer4(x)``; ``grid=2`` averages layer4 over a 2×2 grid
    of cells (adaptive average pooling) and flattens channel-major, as Sener & Koltun 2018's CelebA encoder
    (``avg_pool2d(layer4, 4).view(B, -1)`` on its 8×8 map) does.
    """

    def __init__(self, trunk: ResNet, grid: int = 1) -> None:
        super().__init__()
        if grid < 1:
            raise ValueError(f"PooledResNetEncoder: grid must be >= 1, got {grid}")
        self.trunk = trunk
        self.grid = grid
        self.out_features = trunk.out_channels * grid * grid

    def forward(self, x: Tensor) -> Tensor:
        features = self.trunk(x)[-1]
        if self.grid == 1:
            # The plain mean, so the default encoder computes exactly what it always has.
            return features.mean(dim=(2, 3))
        return F.adaptive_avg_pool2d(features, self.grid).flatten(1)


@MODELS.register("resnet18")
def build_resnet18(
    heads: Mapping[str, HeadSpec],
    *,
    in_channels: int = 3,
    pretrained: str | Path | None = None,
    stem: str = "imagenet",
) -> MultiTaskModel:
    """ResNet-18 shared encoder with one linear layer per task (CelebA).

    Every head must be a vector head (``dense=False``); for CelebA each of the 40 attributes is a task with
    ``HeadSpec(1, dense=False)`` whose output is one logit.

    Args:
        heads: task name → ``HeadSpec(out_channels, dense=False)``.
        in_channels: input channels (ImageNet weights need 3).
        pretrained: local file with ImageNet weights in torchvision's ResNet-18 state-dict layout (``fc.*`` is
            ignored; see :mod:`taskbalance.models.pretrained`). Needs ``stem="imagenet"``.
        stem: ``"imagenet"`` (default): 7×7/2 conv + max pool, global average pool → 512-d, 11,176,512 shared
            parameters + 513 per one-logit head (11,197,032 for CelebA's 40 heads). ``"cifar"``: Sener & Koltun
            2018's CelebA network, 3×3/1 conv without max pool, layer4 pooled to 2×2 → 2048-d, 11,168,832 shared
            + 2,049 per one-logit head (11,250,792 for 40 heads).
    """
    check_heads(heads, "resnet18", dense=False)
    if stem not in STEMS:
        raise ValueError(f"resnet18: stem must be one of {', '.join(map(repr, STEMS))}, got {stem!r}")
    if pretrained is not None and stem != "imagenet":
        # ImageNet files hold a 7×7 conv1; refusing here names the real conflict instead of a shape mismatch.
        raise ValueError(f"resnet18: pretrained ImageNet weights need stem='imagenet', got stem={stem!r}")
    trunk = resnet18(in_channels, stem=stem)
    if pretrained is not None:
        load_resnet_weights(trunk, pretrained)
    encoder = PooledResNetEncoder(trunk, POOLED_GRID[stem])
    linear_heads = {name: nn.Linear(encoder.out_features, spec.out_channels) for name, spec in heads.items()}
    return MultiTaskModel(encoder, linear_heads)


__all__ = [
    "POOLED_GRID",
    "STEMS",
    "BasicBlock",
    "Bottleneck",
    "PooledResNetEncoder",
    "ResNet",
    "build_resnet18",
    "resnet18",
    "resnet50",
]
