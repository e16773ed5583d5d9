"""SegNet as the multi-task baseline of MTAN: a shared encoder-decoder and a small conv head per dense task.

Badrinarayanan et al. 2017, "SegNet" (TPAMI): a VGG-16-like encoder whose max-pooling indices drive the decoder's
unpooling. Liu et al. 2019, "End-to-End Multi-Task Learning with Attention" (CVPR), use it with hard parameter
sharing (their "split, standard" baseline, also the SegNet of LibMTL's NYUv2/Cityscapes examples): the whole
encoder-decoder is shared and each task gets ``Conv3×3(64→64) → Conv1×1(64→C)``.

Layout (every conv is 3×3, stride 1, padding 1, with bias, followed by BatchNorm and ReLU):

- encoder stages of widths (64, 128, 256, 512, 512) with (2, 2, 3, 3, 3) convs, each stage followed by a 2×2/2
  max pool that remembers its indices (13 convs: VGG-16's conv part);
- decoder stages mirror them: 2×2 max-unpool with the stage's indices, one conv to the next-shallower width
  (512→512, 512→256, 256→128, 128→64, 64→64), then (2, 2, 2, 1, 1) convs at that width.

The shared representation is the last decoder map ``[B, 64, H, W]`` at the input resolution (unpooling uses the
pre-pool sizes, so any H, W ≥ 32 works, not only multiples of 32). Heads output raw values (logits, depth,
unnormalised normals): the tasks apply softmax / normalisation in their losses. As in MTAN the head's two convs
have no non-linearity between them.

Parameters (measured, checked by hand in the tests): 24,943,296 shared; a head with C outputs adds
``64·64·9 + 64 + 64·C + C`` = 36,928 + 65·C (NYUv2's segmentation 13 / depth 1 / normals 3 → 25,055,185 in all).

Example:
    >>> import torch
    >>> from taskbalance.types import HeadSpec
    >>> model = build_segnet({"segmentation": HeadSpec(7, dense=True), "depth": HeadSpec(1, dense=True)})
    >>> out = model(torch.zeros(1, 3, 64, 96))
    >>> {name: tuple(value.shape) for name, value in out.items()}
    {'segmentation': (1, 7, 64, 96), 'depth': (1, 1, 64, 96)}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from torch import Tensor, nn

from taskbalance.models.base import MultiTaskModel
from taskbalance.models.heads import check_heads, conv_bn_relu, resize_to_head
from taskbalance.models.registry import MODELS
from taskbalance.types import HeadSpec

STAGE_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
ENCODER_CONVS: tuple[int, ...] = (2, 2, 3, 3, 3)
MIN_INPUT_SIZE = 2 ** len(STAGE_WIDTHS)


class SegNetEncoderDecoder(nn.Module):
    """The shared part: VGG-16-like encoder with pooling indices, mirrored decoder with unpooling → ``[B, 64, H, W]``.

    Args:
        in_channels: input image channels.

    Example:
        >>> import torch
        >>> tuple(SegNetEncoderDecoder()(torch.zeros(1, 3, 32, 40)).shape)
        (1, 64, 32, 40)
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"segnet: in_channels must be >= 1, got {in_channels}")
        self.out_channels = STAGE_WIDTHS[0]
        encoder_stages = []
        channels = in_channels
        for width, num_convs in zip(STAGE_WIDTHS, ENCODER_CONVS, strict=True):
            convs = [conv_bn_relu(channels, width, bias=True)]
            convs += [conv_bn_relu(width, width, bias=True) for _ in range(num_convs - 1)]
            encoder_stages.append(nn.Sequential(*convs))
            channels = width
        self.encoder_stages = nn.ModuleList(encoder_stages)
        # Deepest first (execution order): decoder_stages[j] undoes encoder_stages[-1 - j].
        decoder_stages = []
        for level in reversed(range(len(STAGE_WIDTHS))):
            width, num_convs = STAGE_WIDTHS[level], ENCODER_CONVS[level]
            target = STAGE_WIDTHS[max(level - 1, 0)]
            convs = [conv_bn_relu(width, target, bias=True)]
            convs += [conv_bn_relu(target, target, bias=True) for _ in range(num_convs - 1)]
            decoder_stages.append(nn.Sequential(*convs))
        self.decoder_stages = nn.ModuleList(decoder_stages)
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        initialise_like_mtan(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.stage_features(x).decoder_outputs[-1]

    def stage_features(self, x: Tensor) -> SegNetFeatures:
        """Run the network and keep every stage's features (what MTAN's attention modules read)."""
        if x.dim() != 4 or min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(
                f"segnet: expected an image batch [B, C, H, W] with H, W >= {MIN_INPUT_SIZE}, got {tuple(x.shape)}"
            )
        features = SegNetFeatures([], [], [], [])
        indices: list[Tensor] = []
        sizes: list[tuple[int, int]] = []
        for stage in self.encoder_stages:
            assert isinstance(stage, nn.Sequential)  # for type checkers: every stage is built as one
            features.encoder_first.append(stage[0](x))
            x = stage[1:](features.encoder_first[-1])
            features.encoder_outputs.append(x)
            sizes.append((x.shape[-2], x.shape[-1]))
            x, stage_indices = self.pool(x)
            indices.append(stage_indices)
        for stage, stage_indices, size in zip(self.decoder_stages, reversed(indices), reversed(sizes), strict=True):
            features.decoder_inputs.append(self.unpool(x, stage_indices, output_size=size))
            x = stage(features.decoder_inputs[-1])
            features.decoder_outputs.append(x)
        return features


class SegNetFeatures(NamedTuple):
    """Every stage's features of one SegNet pass, five per list, encoder shallowest first, decoder deepest first.

    ``encoder_first[j]``: the output of encoder stage j's first conv; ``encoder_outputs[j]``: the stage's output
    before its pooling; ``decoder_inputs[j]``: the unpooled input of decoder stage j; ``decoder_outputs[j]``: its
    output (the last is the network's output).
    """

    encoder_first: list[Tensor]
    encoder_outputs: list[Tensor]
    decoder_inputs: list[Tensor]
    decoder_outputs: list[Tensor]


class SegNetHead(nn.Module):
    """One task's head: ``Conv1×1(Conv3×3(rep))`` with ``out_channels`` outputs, resized to ``spec.size`` if set."""

    def __init__(self, in_channels: int, spec: HeadSpec) -> None:
        super().__init__()
        self.spec = spec
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.predict = nn.Conv2d(in_channels, spec.out_channels, 1)
        initialise_like_mtan(self)

    def forward(self, representation: Tensor) -> Tensor:
        prediction = self.predict(self.conv(representation))
        return resize_to_head(prediction, self.spec, (representation.shape[-2], representation.shape[-1]))


def initialise_like_mtan(module: nn.Module) -> None:
    """MTAN's initialisation (Liu et al. 2019, released code): Xavier-normal convs, zero biases, BN as identity."""
    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            nn.init.xavier_normal_(child.weight)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
        elif isinstance(child, nn.BatchNorm2d):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)


@MODELS.register("segnet")
def build_segnet(
    heads: Mapping[str, HeadSpec], *, in_channels: int = 3, pretrained: str | Path | None = None
) -> MultiTaskModel:
    """Multi-task SegNet (MTAN's split baseline) with one :class:`SegNetHead` per dense task.

    Args:
        heads: task name → ``HeadSpec(out_channels, dense=True[, size])``; vector heads are refused.
        in_channels: input channels (3 for RGB).
        pretrained: not supported — MTAN and LibMTL train this SegNet from scratch; passing a path raises.
    """
    check_heads(heads, "segnet", dense=True)
    if pretrained is not None:
        raise ValueError(
            f"segnet: pretrained weights are not supported (it is trained from scratch, as in MTAN); got {pretrained!r}"
        )
    encoder = SegNetEncoderDecoder(in_channels)
    return MultiTaskModel(encoder, {name: SegNetHead(encoder.out_channels, spec) for name, spec in heads.items()})


__all__ = ["SegNetEncoderDecoder", "SegNetFeatures", "SegNetHead", "build_segnet", "initialise_like_mtan"]
