"""Floating-point operations of one sample's forward pass, counted without computing anything.

The model is built on PyTorch's ``meta`` device, where tensors have a shape but no storage, and run once on one
sample under :class:`torch.utils.flop_counter.FlopCounterMode`. The counter charges 2 FLOPs per multiply-add of every
matrix product and convolution (transposed ones included); element-wise operations, normalisation, pooling and
interpolation are left out, so the count is a slight underestimate dominated by what dominates the time. Building
and running on ``meta`` reads no file and takes milliseconds even for DeepLabV3+ at 288 × 384, which is what lets
``taskbalance bench --preset NAME --dry-run`` give the compute of a paper setup without its data.

The count is split into the shared encoder's part and the heads' part, because a training step's cost depends on
the method: a gradient method in parameters mode backpropagates through the encoder once per task
(:class:`taskbalance.method.StepPasses` turns passes into FLOPs).

Example:
    >>> from taskbalance.types import HeadSpec
    >>> heads = {"left": HeadSpec(10, dense=False), "depth": HeadSpec(1, dense=True, size=(9, 9))}
    >>> flops = forward_flops("multilenet", heads, (1, 36, 36))
    >>> 1e6 < flops.total < 1e9, flops.shared > flops.heads
    (True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from taskbalance.models.registry import MODELS
from taskbalance.types import HeadSpec


@dataclass(frozen=True)
class ForwardFlops:
    """One sample's forward FLOPs: the shared encoder's (``model.shared``) and all heads' (``model.decode``)."""

    shared: int
    heads: int

    @property
    def total(self) -> int:
        return self.shared + self.heads


def forward_flops(
    model: str, heads: Mapping[str, HeadSpec], input_shape: Sequence[int], **options: object
) -> ForwardFlops:
    """FLOPs of ``model``'s forward pass on one sample of shape ``input_shape`` (channels first) with ``heads``.

    ``options`` are the model's constructor options; the count is the same with any weights, so the caller leaves
    out options that read a weights file. Raises what the model's constructor or forward raises (e.g. ``KeyError``
    for an unknown model, ``TypeError`` for an unknown option).
    """
    with torch.device("meta"):
        network = MODELS.create(model, heads=dict(heads), in_channels=int(input_shape[0]), **options)
        sample = torch.empty(1, *input_shape)
    # Evaluation mode: batch norm in training mode refuses one value per channel (DeepLab's pooled branch); the
    # products, and so the count, are the same in both modes.
    network.eval()
    with torch.no_grad():
        with FlopCounterMode(display=False) as shared:
            representation = network.shared(sample)
        with FlopCounterMode(display=False) as decode:
            network.decode(representation)
    return ForwardFlops(int(shared.get_total_flops()), int(decode.get_total_flops()))
