"""Floating-point operations of one sample's forward pass, counted without computing anything.

The model is built on PyTorch's ``meta`` device, where tensors have a shape but no storage, and run once on one
sample under :class:`torch.utils.flop_counter.FlopCounterMode`. The counter charges 2 FLOPs per multiply-add of every
matrix product and convolution (transposed ones included); element-wise operations, normalisation, pooling and
interpolation are left out, so the count is a slight underestimate dominated by what dominates the time. Building
and running on ``meta`` reads no file and takes milliseconds even for DeepLabV3+ at 288 × 384, which is what lets
``taskbalance bench --preset NAME --dry-run`` give the compute of a paper setup without its data.

A training step costs about :data:`TRAINING_FLOPS_PER_FORWARD` forward passes: the backward pass computes the
gradient with respect to each layer's input and with respect to its weights, each about as costly as the forward
product (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Sec. 2.1, count 6 FLOPs per parameter and
token for training against 2 for the forward pass).

Example:
    >>> from taskbalance.types import HeadSpec
    >>> heads = {"left": HeadSpec(10, dense=False), "depth": HeadSpec(1, dense=True, size=(9, 9))}
    >>> flops = forward_flops("multilenet", heads, (1, 36, 36))
    >>> 1e6 < flops < 1e9
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from taskbalance.models.registry import MODELS
from taskbalance.types import HeadSpec

TRAINING_FLOPS_PER_FORWARD = 3
"""A training step's FLOPs per sample in forward passes: the forward pass and a backward pass of about twice its
cost. Methods that backpropagate once per task (the gradient aggregations) cost more."""


def forward_flops(
    model: str, heads: Mapping[str, HeadSpec], input_shape: Sequence[int], **options: object
) -> int:
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
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(sample)
    return int(counter.get_total_flops())
