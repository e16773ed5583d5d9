"""Clipping the shared gradient after a gradient method's step, as the Nash-MTL, FairGrad and SDMGrad authors do."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from taskbalance.aggregation.base import GradientAggregation
from taskbalance.method import Method, Representation, SharedParameters, TaskLosses, is_unscaled


def check_max_norm(owner: str, max_norm: object) -> float:
    """``max_norm`` as a float, or a ``ValueError`` naming ``owner`` unless it is a finite number ≥ 0."""
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float) or not 0 <= max_norm < math.inf:
        raise ValueError(f"{owner}: max_norm must be a finite number >= 0 (0 turns clipping off), got {max_norm!r}")
    return float(max_norm)


def clip_shared_gradients(shared: list[nn.Parameter], max_norm: float, loss_scale: float | Tensor = 1.0) -> Tensor:
    """Clip the total norm of the update held in the ``.grad`` of ``shared`` to ``max_norm``; return the factor.

    The factor is ``min(1, max_norm / (|d| + 1e-6))``, that of ``torch.nn.utils.clip_grad_norm_`` (which does the
    clipping, with no host sync), so that a method multiplies its ``last_weights`` by it and ``d = Σ_k last_weights_k
    ∇L_k`` holds for the clipped d; it is 1 where the norm is not finite (an overflowing step, which the GradScaler
    skips). The gradients of a mixed-precision step hold ``loss_scale`` × the update, so the limit is scaled alike.
    The authors' trainers clip after the method's step (``WeightMethod.backward`` in their code).

    Example:
        >>> p = nn.Parameter(torch.zeros(2))
        >>> p.grad = torch.tensor([3.0, 4.0])  # |d| = 5
        >>> factor = clip_shared_gradients([p], max_norm=1.0)
        >>> p.grad, factor
        (tensor([0.6000, 0.8000]), tensor(0.2000))
    """
    # A tensor scale stays a tensor (clip_grad_norm_ takes one): float() of it would sync with the device each step.
    limit = max_norm * (1.0 if is_unscaled(loss_scale) else loss_scale)
    total = torch.nn.utils.clip_grad_norm_([p for p in shared if p.grad is not None], limit)  # type: ignore[arg-type]
    factor = (limit / (total + 1e-6)).clamp(max=1.0)
    return torch.where(torch.isfinite(total), factor, torch.ones_like(factor))


def clip_after_step(
    method: Method, shared: list[nn.Parameter], max_norm: float, loss_scale: float | Tensor, weights_before: Tensor
) -> None:
    """Clip the shared gradient of the step just taken (``max_norm > 0``) and scale ``method.last_weights`` alike.

    ``weights_before`` is ``method.last_weights`` before the step: a step that set none (an overflow the GradScaler
    skips) leaves the previous step's weights as they are.
    """
    if max_norm <= 0:
        return
    factor = clip_shared_gradients(shared, max_norm, loss_scale)
    if method.last_weights is not weights_before:
        method.last_weights = method.last_weights * factor.to(method.last_weights)


class ClipsSharedGradient(GradientAggregation):
    """Mixin for a gradient method with a ``max_norm`` option that clips the shared gradient after its step.

    Put it before the method's base class (``class FairGrad(ClipsSharedGradient, GramAggregation)``) and set
    ``self.max_norm`` (:func:`check_max_norm`); :meth:`step` then runs the base step and :func:`clip_after_step`.
    """

    max_norm: float

    def step(
        self, losses: TaskLosses, *, shared_parameters: SharedParameters = None, representation: Representation = None,
        loss_scale: float | Tensor = 1.0,
    ) -> None:
        shared = self.trainable_shared(shared_parameters)
        weights_before = self.last_weights
        super().step(losses, shared_parameters=shared, representation=representation, loss_scale=loss_scale)
        clip_after_step(self, shared, self.max_norm, loss_scale, weights_before)
