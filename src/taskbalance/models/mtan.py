"""MTAN: a shared SegNet with one soft-attention module per task and per encoder/decoder stage.

Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with Attention" (CVPR), the SegNet-MTAN of the NYUv2 and
Cityscapes tables of MTAN, CAGrad, Nash-MTL, FAMO and LibMTL. The global network is the SegNet of
:mod:`taskbalance.models.segnet` (the same modules, parameters and initialisation). Each task reads it through its
own attention path, stage by stage (j = 0 … 4, encoder shallowest first, then decoder deepest first):

- encoder stage j: mask ``a = σ-attention(first_j ⊕ p_{j−1})`` (``⊕`` = channel concatenation; stage 0 reads
  ``first_0`` alone), attended features ``a ⊙ out_j``, then ``p_j = maxpool₂(f_j(a ⊙ out_j))``;
- decoder stage j: ``u = f'_j(upsample(p))`` (bilinear, to the stage's size), mask ``a = σ-attention(unpooled_j ⊕
  u)``, attended features ``p = a ⊙ out'_j``; the last one feeds the task's head.

``first_j``/``out_j`` are encoder stage j's first-conv output and output (before pooling), ``unpooled_j``/``out'_j``
decoder stage j's unpooled input and output (:class:`~taskbalance.models.segnet.SegNetFeatures`). A σ-attention
module is ``Conv1×1 → BN → ReLU → Conv1×1 → BN → Sigmoid`` (one per task and stage, the task-specific part);
``f_j``/``f'_j`` are conv-BN-ReLU 3×3 blocks that map the attended features to the next stage's width. As in the
authors' released code, ``f``/``f'`` are one set **shared by all tasks' attention paths** (each task applies them to
its own attended features). Heads are SegNet's (:class:`~taskbalance.models.segnet.SegNetHead`).

Which parameters are shared (what ``model.shared_parameters()`` returns, the part a gradient method balances) is
the ``shared`` option:

- ``"segnet"`` (default): the SegNet only. The attention modules and heads are task-specific; the shared ``f``
  blocks are reached by every task and get the sum of the tasks' (weighted) gradients, like any parameter outside
  the shared set. Both gradient modes work: the **shared representation** is the tuple of the 20 SegNet stage
  features the attention modules read, ``(first_0…4, out_0…4, unpooled_0…4, out'_0…4)`` (each an alias of the
  SegNet's own tensor, so a task's gradient w.r.t. it is the partial one: the SegNet continues from the original
  tensor, not from the alias, and the one backward of the aggregated gradients through the SegNet is exact).
- ``"all_but_heads"``: everything except the heads (SegNet, attention modules and ``f`` blocks), as the Nash-MTL
  and FAMO code define MTAN's shared parameters for their tables. The attention modules then sit between the
  representation and the losses, so only ``mode="parameters"`` applies; representation mode raises an error naming
  the shared parameters used outside the representation.

Parameters (measured by the tests) for NYUv2's heads (13 / 1 / 3 outputs): 44,229,073 in all — SegNet 24,943,296,
shared ``f`` blocks 10,220,160, attention modules 2,984,576 per task, heads 111,889.

Example:
    >>> import torch
    >>> from taskbalance.types import HeadSpec
    >>> model = build_mtan({"segmentation": HeadSpec(7, dense=True), "depth": HeadSpec(1, dense=True)})
    >>> out = model(torch.zeros(1, 3, 64, 96))
    >>> {name: tuple(value.shape) for name, value in out.items()}
    {'segmentation': (1, 7, 64, 96), 'depth': (1, 1, 64, 96)}
    >>> len(model.shared(torch.zeros(1, 3, 64, 96)))
    20
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskbalance.models.base import MultiTaskModel
from taskbalance.models.heads import check_heads, conv_bn_relu
from taskbalance.models.registry import MODELS
from taskbalance.models.segnet import (
    STAGE_WIDTHS,
    SegNetEncoderDecoder,
    SegNetFeatures,
    SegNetHead,
    initialise_like_mtan,
)
from taskbalance.types import HeadSpec

NUM_STAGES = len(STAGE_WIDTHS)
NUM_FEATURES = 4 * NUM_STAGES
SHARED_SCOPES: tuple[str, ...] = ("segnet", "all_but_heads")


def _decoder_width(level: int) -> int:
    """Output width of the decoder stage that undoes encoder stage ``level`` (the next-shallower width)."""
    return STAGE_WIDTHS[max(level - 1, 0)]


class MTANSharedNetwork(nn.Module):
    """The SegNet, returning the 20 stage features the attention modules read (see the module docstring).

    Example:
        >>> import torch
        >>> features = MTANSharedNetwork()(torch.zeros(1, 3, 32, 32))
        >>> [tuple(f.shape[1:]) for f in features[:5]]
        [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.segnet = SegNetEncoderDecoder(in_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        stages = self.segnet.stage_features(x)
        # Aliases, not the tensors the SegNet continues from: a task's gradient w.r.t. one of them is then the partial
        # derivative through its own attention path only (autograd.grad w.r.t. a tensor the SegNet reuses downstream
        # would add the path through the later features too, and the final backward would count it twice).
        return tuple(feature.view_as(feature) for group in stages for feature in group)


def split_features(representation: Tensor | Sequence[Tensor]) -> SegNetFeatures:
    """The flat 20-tuple of :class:`MTANSharedNetwork` back into its four groups of five."""
    if isinstance(representation, Tensor) or len(representation) != NUM_FEATURES:
        got = "a tensor" if isinstance(representation, Tensor) else f"{len(representation)} tensors"
        raise ValueError(f"mtan: the representation must be the {NUM_FEATURES} SegNet stage features, got {got}")
    groups = [list(representation[i * NUM_STAGES : (i + 1) * NUM_STAGES]) for i in range(4)]
    return SegNetFeatures(*groups)


def attention_mask(in_channels: int, channels: int) -> nn.Sequential:
    """``Sigmoid(BN(Conv1×1(ReLU(BN(Conv1×1(x))))))``: a soft per-channel, per-pixel mask in (0, 1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.Sigmoid(),
    )


class SharedAttentionBlocks(nn.Module):
    """The conv-BN-ReLU blocks ``f_j`` (encoder) and ``f'_j`` (decoder) every task's attention path applies."""

    def __init__(self) -> None:
        super().__init__()
        # Encoder stage j maps its attended features to the next stage's width (the deepest keeps 512).
        self.encoder = nn.ModuleList(
            conv_bn_relu(STAGE_WIDTHS[j], STAGE_WIDTHS[min(j + 1, NUM_STAGES - 1)], bias=True)
            for j in range(NUM_STAGES)
        )
        # Decoder stage j (deepest first) maps the previous attended features to this stage's output width.
        levels = list(reversed(range(NUM_STAGES)))
        inputs = [STAGE_WIDTHS[-1]] + [_decoder_width(level) for level in levels[:-1]]
        self.decoder = nn.ModuleList(
            conv_bn_relu(width, _decoder_width(level), bias=True) for width, level in zip(inputs, levels, strict=True)
        )


class MTANTaskBranch(nn.Module):
    """One task's attention modules (five encoder, five decoder) and its head."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.encoder_attention = nn.ModuleList(
            attention_mask(STAGE_WIDTHS[j] * (1 if j == 0 else 2), STAGE_WIDTHS[j]) for j in range(NUM_STAGES)
        )
        self.decoder_attention = nn.ModuleList(
            attention_mask(STAGE_WIDTHS[level] + _decoder_width(level), _decoder_width(level))
            for level in reversed(range(NUM_STAGES))
        )
        self.head = SegNetHead(STAGE_WIDTHS[0], spec)

    def forward(self, features: SegNetFeatures, shared_blocks: SharedAttentionBlocks) -> Tensor:
        attended: Tensor | None = None
        for j in range(NUM_STAGES):
            first = features.encoder_first[j]
            mask = self.encoder_attention[j](first if attended is None else torch.cat([first, attended], dim=1))
            attended = F.max_pool2d(shared_blocks.encoder[j](mask * features.encoder_outputs[j]), 2, stride=2)
        assert attended is not None  # NUM_STAGES > 0
        for j in range(NUM_STAGES):
            unpooled = features.decoder_inputs[j]
            upsampled = F.interpolate(attended, size=unpooled.shape[-2:], mode="bilinear", align_corners=True)
            mask = self.decoder_attention[j](torch.cat([unpooled, shared_blocks.decoder[j](upsampled)], dim=1))
            attended = mask * features.decoder_outputs[j]
        return self.head(attended)


class MTAN(MultiTaskModel):
    """SegNet-MTAN: ``encoder`` = :class:`MTANSharedNetwork`, ``heads[name]`` = :class:`MTANTaskBranch`.

    Args:
        heads: task name → ``HeadSpec(out_channels, dense=True[, size])``.
        in_channels: input image channels.
        shared: ``"segnet"`` or ``"all_but_heads"``: what :meth:`shared_parameters` returns (module docstring).
    """

    def __init__(self, heads: Mapping[str, HeadSpec], *, in_channels: int = 3, shared: str = "segnet") -> None:
        check_heads(heads, "mtan", dense=True)
        if shared not in SHARED_SCOPES:
            raise ValueError(f"mtan: shared must be one of {SHARED_SCOPES}, got {shared!r}")
        super().__init__(MTANSharedNetwork(in_channels), {name: MTANTaskBranch(spec) for name, spec in heads.items()})
        self.attention_blocks = SharedAttentionBlocks()
        self.shared_scope = shared
        initialise_like_mtan(self.heads)
        initialise_like_mtan(self.attention_blocks)

    def decode(self, representation: Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """Every task's attention path over the 20 stage features, then its head."""
        features = split_features(representation)
        return {name: branch(features, self.attention_blocks) for name, branch in self.heads.items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The SegNet (``shared="segnet"``), or everything but the heads (``shared="all_but_heads"``)."""
        if self.shared_scope == "segnet":
            return self.encoder.parameters()
        head_ids = {id(p) for name in self.heads for p in self.branch(name).head.parameters()}
        return (p for p in self.parameters() if id(p) not in head_ids)

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        """One task's attention modules and head (``"segnet"``), or its head only (``"all_but_heads"``)."""
        branch = self.branch(name)
        return branch.parameters() if self.shared_scope == "segnet" else branch.head.parameters()

    def branch(self, name: str) -> MTANTaskBranch:
        """Task ``name``'s branch: its attention modules and its head."""
        branch = self.heads[name]
        assert isinstance(branch, MTANTaskBranch)  # every head is built as one
        return branch

    def attention_block_parameters(self) -> Iterator[nn.Parameter]:
        """The ``f``/``f'`` blocks every task's attention path shares."""
        return self.attention_blocks.parameters()


@MODELS.register("mtan")
def build_mtan(
    heads: Mapping[str, HeadSpec],
    *,
    in_channels: int = 3,
    shared: str = "segnet",
    pretrained: str | Path | None = None,
) -> MTAN:
    """SegNet-MTAN with one attention path and :class:`~taskbalance.models.segnet.SegNetHead` per dense task.

    Args:
        heads: task name → ``HeadSpec(out_channels, dense=True[, size])``; vector heads are refused.
        in_channels: input channels (3 for RGB).
        shared: ``"segnet"`` (default) or ``"all_but_heads"``: the parameters gradient methods balance.
        pretrained: not supported — MTAN is trained from scratch; passing a path raises.
    """
    if pretrained is not None:
        raise ValueError(
            f"mtan: pretrained weights are not supported (it is trained from scratch, as in MTAN); got {pretrained!r}"
        )
    return MTAN(heads, in_channels=in_channels, shared=shared)


__all__ = ["MTAN", "MTANSharedNetwork", "MTANTaskBranch", "SharedAttentionBlocks", "build_mtan", "split_features"]
