"""Small CNNs for the embedded MultiFashion benchmark: ``multilenet`` (≈5k shared parameters) and ``small_cnn``.

Both share one encoder among all tasks and give every task its own head; the encoder returns a single feature map
``[B, C, h, w]`` (the shared representation, so gradient methods can take per-task gradients w.r.t. it).

* ``multilenet`` — the convolutional part of MultiLeNet (Sener & Koltun 2018, "Multi-Task Learning as
  Multi-Objective Optimization", NeurIPS, used on MultiMNIST/MultiFashion): ``Conv5×5(→10) → MaxPool2 → ReLU →
  Conv5×5(10→20) → MaxPool2 → ReLU``, with "same" padding (2); a 36 × 36 input gives ``[B, 20, 9, 9]``, whose cell
  (i, j) is centred on the 4 × 4 input block (i, j) — exactly the cells of MultiFashion's 9 × 9 depth map. (With
  the original unpadded convolutions the map is 6 × 6, covers only the image centre, and the depth task did not
  beat predicting the mean within 3 epochs.) The shared part has ``(25·C_in + 1)·10 + (250 + 1)·20`` = 5,280
  parameters for one input channel. Unlike the original, the fully connected layer is moved into each head (so the
  representation stays spatial for the dense task) and there is no dropout (runs stay deterministic). Vector heads:
  ``Flatten → Linear(1620, 50) → ReLU → Linear(50, C)``.
* ``small_cnn`` — three ``Conv3×3 → BatchNorm → ReLU`` stages of 32, 64, 96 channels with 2× max pooling after the
  first two; a 36 × 36 input gives ``[B, 96, 9, 9]`` (74,400 shared parameters). Vector heads:
  ``AdaptiveAvgPool(3 × 3) → Flatten → Linear(864, C)``.

``channels_last=True`` (both models) keeps the encoder's weights and its input in channels-last memory format: the
same parameters and initial values, outputs equal up to rounding, faster convolutions on CPU (``benchmarks/
memory_format.py``). It is a model option, so part of a run's identity: results are not bit-identical to the default.

Dense heads (both models) are cheap: a 1×1 convolution to the task's channels, resized bilinearly to
``HeadSpec.size`` (or to ``input_size`` when the spec has none). With the MultiFashion heads (two 10-way classes and
a 9 × 9 map) ``multilenet`` has 168,421 parameters in all (5,280 shared) and ``small_cnn`` 91,797 (74,400 shared).

Example:
    >>> import torch
    >>> from taskbalance.types import HeadSpec
    >>> heads = {"left": HeadSpec(10, dense=False), "depth": HeadSpec(1, dense=True, size=(9, 9))}
    >>> model = build_multilenet(heads)
    >>> {name: tuple(out.shape) for name, out in model(torch.zeros(2, 1, 36, 36)).items()}
    {'left': (2, 10), 'depth': (2, 1, 9, 9)}
    >>> sum(p.numel() for p in model.shared_parameters())
    5280
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from taskbalance.models.base import MultiTaskModel
from taskbalance.models.heads import conv_bn_relu, resize_to_head
from taskbalance.models.registry import MODELS
from taskbalance.types import HeadSpec


class VectorHead(nn.Module):
    """``[B, C, h, w] → [B, out_features]``: adaptive average pooling to ``pooled × pooled``, flatten, MLP.

    Args:
        in_channels: channels C of the representation.
        pooled: side of the pooled map (pooling to the map's own size is the identity).
        out_features: the task's outputs.
        hidden: width of one hidden ReLU layer, or None for a single linear layer.
    """

    def __init__(self, in_channels: int, pooled: int, out_features: int, hidden: int | None = None) -> None:
        super().__init__()
        flat = in_channels * pooled * pooled
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(pooled), nn.Flatten()]
        if hidden is None:
            layers.append(nn.Linear(flat, out_features))
        else:
            layers += [nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features)]
        self.layers = nn.Sequential(*layers)

    def forward(self, representation: Tensor) -> Tensor:
        return self.layers(representation)


class LowResDenseHead(nn.Module):
    """``[B, C, h, w] → [B, out_channels, H, W]``: a 1×1 convolution, then a bilinear resize to the head's size."""

    def __init__(self, in_channels: int, spec: HeadSpec, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, spec.out_channels, kernel_size=1)
        self.spec = spec
        self.input_size = input_size

    def forward(self, representation: Tensor) -> Tensor:
        return resize_to_head(self.project(representation), self.spec, self.input_size)


def _check_heads(model: str, heads: Mapping[str, HeadSpec], input_size: tuple[int, int]) -> None:
    if not heads:
        raise ValueError(f"{model}: needs at least one head, got none")
    for name, spec in heads.items():
        if not isinstance(spec, HeadSpec):
            raise TypeError(f"{model}: head {name!r} must be a HeadSpec, got {type(spec).__name__}")
        if spec.out_channels < 1:
            raise ValueError(f"{model}: head {name!r} needs out_channels >= 1, got {spec.out_channels}")
        if spec.size is not None and (len(spec.size) != 2 or min(spec.size) < 1):
            raise ValueError(f"{model}: head {name!r} has an invalid size {spec.size}; expected (H, W) >= 1")
    if len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(f"{model}: input_size must be (H, W) >= 1, got {input_size}")


def multilenet_encoder(in_channels: int = 1) -> nn.Sequential:
    """MultiLeNet's convolutional part with "same" padding: 36 × 36 → ``[B, 20, 9, 9]`` (module docstring)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 10, kernel_size=5, padding=2),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
        nn.Conv2d(10, 20, kernel_size=5, padding=2),
        nn.MaxPool2d(2),
        nn.ReLU(inplace=True),
    )


def small_cnn_encoder(in_channels: int = 1) -> nn.Sequential:
    """Three conv-BN-ReLU stages (32, 64, 96 channels), pooled twice: 36 × 36 → ``[B, 96, 9, 9]``."""
    return nn.Sequential(
        conv_bn_relu(in_channels, 32),
        nn.MaxPool2d(2),
        conv_bn_relu(32, 64),
        nn.MaxPool2d(2),
        conv_bn_relu(64, 96),
    )


def _to_channels_last(module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])


def _assemble(
    model: str,
    encoder: Callable[[], nn.Module],
    heads: Mapping[str, HeadSpec],
    input_size: tuple[int, int],
    vector_head: Callable[[HeadSpec], nn.Module],
    channels: int,
    channels_last: bool,
) -> MultiTaskModel:
    """Check the heads, build one per task (``vector_head(spec)`` or a low-resolution dense head), then the encoder.

    The heads are created before the encoder so that a seed gives the same initial weights as it always has.
    ``channels_last`` stores the encoder's weights and runs its input in channels-last memory format; the weights'
    values and the parameter names stay as they are (a forward pre-hook converts the input, so no module is added).
    """
    if not isinstance(channels_last, bool):
        raise TypeError(f"{model}: channels_last must be true or false, got {channels_last!r}")
    _check_heads(model, heads, input_size)
    size = (int(input_size[0]), int(input_size[1]))
    modules = {
        name: LowResDenseHead(channels, spec, size) if spec.dense else vector_head(spec) for name, spec in heads.items()
    }
    shared = encoder()
    if channels_last:
        shared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
        shared.register_forward_pre_hook(_to_channels_last)
    return MultiTaskModel(shared, modules)


@MODELS.register("multilenet")
def build_multilenet(
    heads: Mapping[str, HeadSpec],
    in_channels: int = 1,
    *,
    input_size: tuple[int, int] = (36, 36),
    channels_last: bool = False,
) -> MultiTaskModel:
    """MultiLeNet-style model: 5,280 shared parameters, an MLP head per vector task, a 1×1-conv dense head.

    Args:
        heads: task name → what its head outputs (vector or dense; dense heads resize to ``spec.size``).
        in_channels: input channels.
        input_size: size of a dense prediction whose spec has no ``size``.
        channels_last: run the encoder in channels-last memory format (module docstring).
    """
    return _assemble(
        "multilenet", lambda: multilenet_encoder(in_channels), heads, input_size,
        lambda spec: VectorHead(20, 9, spec.out_channels, hidden=50), channels=20, channels_last=channels_last,
    )


@MODELS.register("small_cnn")
def build_small_cnn(
    heads: Mapping[str, HeadSpec],
    in_channels: int = 1,
    *,
    input_size: tuple[int, int] = (36, 36),
    channels_last: bool = False,
) -> MultiTaskModel:
    """The ≈92k-parameter CNN: 74,400 shared parameters, a linear head per vector task, a 1×1-conv dense head.

    Args:
        heads: task name → what its head outputs (vector or dense; dense heads resize to ``spec.size``).
        in_channels: input channels.
        input_size: size of a dense prediction whose spec has no ``size``.
        channels_last: run the encoder in channels-last memory format (module docstring).
    """
    return _assemble(
        "small_cnn", lambda: small_cnn_encoder(in_channels), heads, input_size,
        lambda spec: VectorHead(96, 3, spec.out_channels), channels=96, channels_last=channels_last,
    )
