"""Building blocks shared by the model files: conv-BN-ReLU, head-spec checks, and resizing to a head's size.

Example:
    >>> import torch
    >>> from taskbalance.types import HeadSpec
    >>> block = conv_bn_relu(3, 8)
    >>> tuple(block(torch.zeros(2, 3, 5, 7)).shape)
    (2, 8, 5, 7)
    >>> tuple(resize_to_head(torch.zeros(1, 2, 4, 4), HeadSpec(2, dense=True), (8, 6)).shape)
    (1, 2, 8, 6)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from taskbalance.types import HeadSpec


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, *, dilation: int = 1, bias: bool = False
) -> nn.Sequential:
    """``ReLU(BN(Conv(x)))`` with "same" padding (``padding = dilation·(kernel_size − 1)/2``) at stride 1.

    BatchNorm makes a convolution bias redundant, so ``bias`` defaults to False; SegNet sets it to True only to
    match the parameter count of MTAN's published model.
    """
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def check_heads(heads: Mapping[str, HeadSpec], model: str, *, dense: bool) -> None:
    """Raise a clear error unless every head is a :class:`HeadSpec` of the kind ``model`` supports.

    Args:
        heads: task name → what the head must output.
        model: the model's registry name, quoted in the error.
        dense: True when the model only makes per-pixel heads, False when it only makes vector heads.
    """
    if not heads:
        raise ValueError(f"{model}: needs at least one head, got none")
    kind = "dense (per-pixel)" if dense else "vector (dense=False)"
    for name, spec in heads.items():
        if not isinstance(spec, HeadSpec):
            raise TypeError(f"{model}: head {name!r} must be a HeadSpec, got {type(spec).__name__}")
        if spec.dense != dense:
            raise ValueError(
                f"{model}: head {name!r} has dense={spec.dense}, but this model only makes {kind} heads"
            )
        if spec.out_channels < 1:
            raise ValueError(f"{model}: head {name!r} needs out_channels >= 1, got {spec.out_channels}")
        if spec.size is not None and (len(spec.size) != 2 or min(spec.size) < 1):
            raise ValueError(f"{model}: head {name!r} has an invalid size {spec.size}; expected (H, W) >= 1")


def resize_to_head(prediction: Tensor, spec: HeadSpec, input_size: tuple[int, int]) -> Tensor:
    """Bilinearly resize a dense prediction to ``spec.size`` (or to the input size when ``spec.size`` is None).

    A prediction that already has the wanted size is returned unchanged (no interpolation op in the graph).
    """
    size = tuple(spec.size) if spec.size is not None else tuple(input_size)
    if tuple(prediction.shape[-2:]) == size:
        return prediction
    return F.interpolate(prediction, size=size, mode="bilinear", align_corners=False)
