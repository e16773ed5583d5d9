"""DeepLabV3+ for multi-task dense prediction: a shared dilated ResNet-50 and an ASPP + V3+ decoder head per task.

Sources: Chen et al. 2017, "Rethinking Atrous Convolution for Semantic Image Segmentation" (DeepLabV3: ASPP with
image pooling; atrous rates (6, 12, 18) at output stride 16, doubled to (12, 24, 36) at output stride 8), and
Chen et al. 2018, "Encoder-Decoder with Atrous Separable Convolution" (DeepLabV3+: the decoder reduces stride-4
low-level features to 48 channels, concatenates them with the 4×-upsampled ASPP output, refines with two 3×3 convs
of 256 channels, and upsamples the prediction 4× to the input size).

What follows LibMTL's NYUv2/Cityscapes examples (Lin & Zhang 2022, ``resnet_dilated('resnet50')`` with a
``DeepLabHead`` per task): the shared ResNet-50 (stride on the 3×3 conv) dilated to **output stride 8** (strides of
layer3 and layer4 removed; layer3's 3×3 convs dilation 1 in its first block, 2 after; layer4's 2, then 4), the
default here, and each head's ASPP on layer4 with LibMTL's rates (12, 24, 36): 1×1, three atrous 3×3 and
image-pooling branches of 256 channels with BN-ReLU, projected 1280→256. What does not: LibMTL's head is a DeepLabV3
head (after ASPP one 3×3 conv-BN-ReLU and a 1×1 conv, the stride-8 prediction upsampled bilinearly to the input;
dropout 0.5 after the projection), with no layer1 skip; the V3+ decoder here (layer1 skip, two 3×3 convs, 4×
upsampling) is Chen et al. 2018's. Elich et al. 2024 (whose setup the paper presets follow) name their model
DeepLabV3+ (citing Chen et al. 2018) and base their code on LibMTL. ``output_stride=16`` (layer4 dilated only, about
4× cheaper in layer4 and the heads) is offered for CPU budgets.

Differences from the papers, chosen for simplicity: plain (not depthwise-separable) 3×3 convs in ASPP and decoder,
and no dropout. The image-pooling branch ends in BatchNorm over a 1×1 map, so training needs a batch of ≥ 2.

Shared representation: the tuple ``(layer4, layer1)`` = ``([B, 2048, H/os, W/os], [B, 256, H/4, W/4])``. Inputs
must have H and W divisible by 4, so the prediction (4× the low-level map) has exactly the input size; a head
with ``HeadSpec.size`` set is resized to that size instead.

Parameters (measured, checked in the tests): 23,508,032 shared (ResNet-50 without fc); each head
16,838,752 + 257·C (ASPP 15,535,104; decoder 1,303,648 without its final 256→C conv).

Example:
    >>> import torch
    >>> from taskbalance.types import HeadSpec
    >>> model = build_deeplabv3plus({"depth": HeadSpec(1, dense=True)}, output_stride=16)
    >>> tuple(model(torch.zeros(2, 3, 64, 64))["depth"].shape)
    (2, 1, 64, 64)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskbalance.models.base import MultiTaskModel
from taskbalance.models.heads import check_heads, conv_bn_relu, resize_to_head
from taskbalance.models.pretrained import load_resnet_weights
from taskbalance.models.registry import MODELS
from taskbalance.models.resnet import ResNet, resnet50
from taskbalance.types import HeadSpec

DEFAULT_ASPP_RATES: dict[int, tuple[int, ...]] = {16: (6, 12, 18), 8: (12, 24, 36)}
ASPP_CHANNELS = 256
LOW_LEVEL_REDUCED_CHANNELS = 48
LOW_LEVEL_STRIDE = 4


class DilatedResNetEncoder(nn.Module):
    """Shared encoder ``x ↦ (layer4(x), layer1(x))`` of a dilated ResNet: high-level and stride-4 low-level maps."""

    def __init__(self, trunk: ResNet) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_channels = trunk.out_channels
        self.low_level_channels = trunk.low_level_channels

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 4 or x.shape[-2] % LOW_LEVEL_STRIDE or x.shape[-1] % LOW_LEVEL_STRIDE:
            raise ValueError(
                f"deeplabv3plus: expected an image batch [B, C, H, W] with H and W divisible by {LOW_LEVEL_STRIDE},"
                f" got {tuple(x.shape)}"
            )
        low_level, _, _, high_level = self.trunk(x)
        # An alias of the skip feature, so that a gradient w.r.t. the representation's low-level part is the heads'
        # direct use of it only (the path through high_level is the high-level part's): gradient methods in
        # representation mode then backpropagate each path once.
        return high_level, low_level.view_as(low_level)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``Proj1×1(concat[Conv1×1(x), Conv3×3_r(x) for r in rates, Pool(x)])``.

    Every branch is conv-BN-ReLU with ``out_channels`` channels; ``Pool`` is global average pooling → conv 1×1 →
    BN → ReLU, broadcast back to the map's size. The projection maps ``(len(rates) + 2)·out_channels`` channels to
    ``out_channels``.
    """

    def __init__(self, in_channels: int, rates: Sequence[int], out_channels: int = ASPP_CHANNELS) -> None:
        super().__init__()
        if not rates or min(rates) < 1:
            raise ValueError(f"ASPP: atrous rates must be a non-empty list of integers >= 1, got {tuple(rates)}")
        self.rates = tuple(int(rate) for rate in rates)
        branches = [conv_bn_relu(in_channels, out_channels, 1)]
        branches += [conv_bn_relu(in_channels, out_channels, 3, dilation=rate) for rate in self.rates]
        self.branches = nn.ModuleList(branches)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(in_channels, out_channels, 1))
        self.project = conv_bn_relu(out_channels * (len(self.rates) + 2), out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.image_pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class DeepLabV3PlusHead(nn.Module):
    """One task's DeepLabV3+ head on ``(high_level, low_level)``; output at 4× the low-level size (or ``spec.size``).

    ``y = Up4(Conv1×1(Refine(concat[Up(ASPP(high)), Reduce(low)])))``: Reduce is conv 1×1 → 48 channels, Up
    bilinear to the low-level size, Refine two 3×3 conv-BN-ReLU with 256 channels.
    """

    def __init__(self, spec: HeadSpec, high_channels: int, low_channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.spec = spec
        self.aspp = ASPP(high_channels, rates)
        self.reduce_low_level = conv_bn_relu(low_channels, LOW_LEVEL_REDUCED_CHANNELS, 1)
        self.refine = nn.Sequential(
            conv_bn_relu(ASPP_CHANNELS + LOW_LEVEL_REDUCED_CHANNELS, ASPP_CHANNELS),
            conv_bn_relu(ASPP_CHANNELS, ASPP_CHANNELS),
        )
        self.predict = nn.Conv2d(ASPP_CHANNELS, spec.out_channels, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, representation: tuple[Tensor, Tensor]) -> Tensor:
        high_level, low_level = representation
        low_size = (low_level.shape[-2], low_level.shape[-1])
        context = F.interpolate(self.aspp(high_level), size=low_size, mode="bilinear", align_corners=False)
        features = self.refine(torch.cat([context, self.reduce_low_level(low_level)], dim=1))
        full_size = (low_size[0] * LOW_LEVEL_STRIDE, low_size[1] * LOW_LEVEL_STRIDE)
        return resize_to_head(self.predict(features), self.spec, full_size)


@MODELS.register("deeplabv3plus")
def build_deeplabv3plus(
    heads: Mapping[str, HeadSpec],
    *,
    in_channels: int = 3,
    pretrained: str | Path | None = None,
    output_stride: int = 8,
    aspp_rates: Sequence[int] | None = None,
) -> MultiTaskModel:
    """DeepLabV3+ with a shared dilated ResNet-50 and a :class:`DeepLabV3PlusHead` per dense task.

    Args:
        heads: task name → ``HeadSpec(out_channels, dense=True[, size])``; vector heads are refused.
        in_channels: input channels (ImageNet weights need 3).
        pretrained: local file with ImageNet ResNet-50 weights in torchvision naming (``fc.*`` ignored).
        output_stride: 8 (default; LibMTL's dilated ResNet-50) or 16.
        aspp_rates: atrous rates; default (12, 24, 36) at output stride 8, (6, 12, 18) at 16.
    """
    check_heads(heads, "deeplabv3plus", dense=True)
    if output_stride not in DEFAULT_ASPP_RATES:
        raise ValueError(f"deeplabv3plus: output_stride must be 8 or 16, got {output_stride}")
    rates = tuple(aspp_rates) if aspp_rates is not None else DEFAULT_ASPP_RATES[output_stride]
    trunk = resnet50(in_channels, output_stride=output_stride)
    if pretrained is not None:
        load_resnet_weights(trunk, pretrained)
    encoder = DilatedResNetEncoder(trunk)
    task_heads = {
        name: DeepLabV3PlusHead(spec, encoder.out_channels, encoder.low_level_channels, rates)
        for name, spec in heads.items()
    }
    return MultiTaskModel(encoder, task_heads)


__all__ = ["ASPP", "DEFAULT_ASPP_RATES", "DeepLabV3PlusHead", "DilatedResNetEncoder", "build_deeplabv3plus"]
