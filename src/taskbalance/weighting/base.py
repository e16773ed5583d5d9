"""The base class of every loss weighting, and the temperature check its subclasses share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from taskbalance.distributed import average_gradients, is_distributed, mean_across_ranks
from taskbalance.graph import task_leaves
from taskbalance.method import Method, Representation, SharedParameters, TaskLosses, is_unscaled


class LossWeighting(Method):
    """Combines K per-task losses into the one scalar to backpropagate.

    Call ``total = method(losses)`` with ``losses`` a 1-D tensor of K task losses that still carry their graph (e.g.
    ``torch.stack([l1, l2, l3])``) and call ``total.backward()`` — or, as a training loop drives every method,
    ``method.step(losses)``, which does exactly that. ``method.last_weights`` holds the detached per-task weights of
    the last call (shape ``[K]``); what a weight means is documented on each subclass. Before the first call it holds
    the weights the method starts from. Methods with epoch-level state (DWA) update it in :meth:`end_epoch`; the
    training loop calls it on every method once per epoch, and it is a no-op here.

    Args:
        num_tasks: K, the number of task losses per call.
        task_names: optional names of the K tasks, used in error messages.
        validate: check every call's losses (shape, finite, > 0 where the method inverts or logs them) and raise a
            ``ValueError`` naming the task and value. The value check costs one host sync per call (one combined
            reduction read with ``bool()``); ``validate=False`` skips it for speed, and a bad loss then propagates as
            inf/NaN into the total instead of raising. The shape check is always done (it needs no sync).
        sync_across_ranks: inside an initialised ``torch.distributed`` job, average the detached losses over all ranks
            before computing the weights, so every rank uses the same weights (one ``all_reduce`` of K numbers per
            call). The returned total still combines this rank's own losses, so gradients stay local and DDP
            averages them as usual. Without an initialised process group it does nothing. Methods whose weights do
            not depend on the loss values (EW, Scalarization, UW, IMTL-L) are unaffected; for UW and IMTL-L put the
            method's parameters under DDP (or average their gradients) so their log-variances stay equal.

    Subclasses set ``formula``, ``paper`` and ``hyperparameters`` (printed by ``taskbalance methods``), take their
    own hyper-parameters plus ``**common`` (the keywords above, passed on to this class) and implement
    :meth:`combine`.
    """

    kind: ClassVar[str] = "loss weighting"

    def __init__(
        self,
        num_tasks: int,
        *,
        task_names: Sequence[str] | None = None,
        validate: bool = True,
        sync_across_ranks: bool = False,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, validate=validate)
        self.sync_across_ranks = sync_across_ranks

    def forward(self, losses: Tensor) -> Tensor:
        """Return the scalar total loss for the K task ``losses`` and record ``last_weights``."""
        return self._weigh(losses, share=self.sync_across_ranks)

    def _weigh(self, losses: Tensor, *, share: bool) -> Tensor:
        self.check_losses(losses, positive=self.requires_positive_losses, nonnegative=self.requires_nonnegative_losses)
        values = losses.detach()
        if share:
            values = self.shared_values(values)
        total, weights = self.combine(losses, values)
        self.last_weights = weights.detach()
        return total

    def step(
        self, losses: TaskLosses, *, shared_parameters: SharedParameters = None, representation: Representation = None,
        loss_scale: float | Tensor = 1.0,
    ) -> None:
        """``self(torch.stack(losses)).backward()``: one backward of the weighted total.

        ``shared_parameters`` and ``representation`` are not needed by a loss weighting and are ignored. With
        ``sync_across_ranks`` inside a ``torch.distributed`` job, the gradients of every parameter the total
        reaches are then averaged over the ranks (one all-reduce), so every rank holds the global batch's gradient
        (train the model without a DDP wrapper then; with one, the extra averaging changes nothing but costs time).
        """
        stacked = losses if isinstance(losses, Tensor) else torch.stack(list(losses))
        if not (self.sync_across_ranks and is_distributed()):
            total = self(stacked)
            (total if is_unscaled(loss_scale) else total * loss_scale).backward()
            return
        # The global batch's total is a function of the ranks' mean losses; its gradient is Σ_k s_k·∇L_k with
        # s = ∂total/∂L at those means, so each rank backpropagates Σ_k s_k·L_k of its own samples and the ranks
        # average: exact for every weighting, also those whose total is not linear in the losses (GLS, FAMO, STCH).
        scales = self.loss_scales(mean_across_ranks(stacked.detach()), loss_scale=loss_scale)
        surrogate = (scales * stacked).sum()
        if not is_unscaled(loss_scale):
            surrogate = surrogate * loss_scale
        reached = task_leaves(surrogate.grad_fn, stop_at=[])
        surrogate.backward()
        average_gradients(reached)

    def loss_scales(self, losses: Tensor, loss_scale: float | Tensor = 1.0) -> Tensor:
        """``s_k = ∂total/∂L_k`` at ``losses`` (detached ``[K]``); sets the ``.grad`` of the method's own parameters.

        Records ``last_weights`` and advances the method's state like a call does, but computes the weights at
        exactly ``losses``: it exchanges no losses across ranks, even with ``sync_across_ranks`` (its callers, the
        distributed :meth:`step` and a gradient method's, pass the ranks' mean losses already; a second average would
        cost a collective and change nothing). Gradient methods composed with a weighting scale task k's gradient by
        ``s_k``. The parameters' ``.grad`` are ``loss_scale`` times their gradient, like every other gradient of a
        scaled step (``GradScaler.step`` divides them all by the scale); the returned ``s_k`` are not scaled.
        """
        values = losses.detach().clone().requires_grad_(True)
        total = self._weigh(values, share=False)
        params = [p for p in self.parameters() if p.requires_grad]
        grads = torch.autograd.grad(total, [values, *params], allow_unused=True)
        for p, g in zip(params, grads[1:], strict=True):
            p.grad = g if g is None or is_unscaled(loss_scale) else g * loss_scale
        return torch.zeros_like(values.detach()) if grads[0] is None else grads[0]

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(total, weights)``.

        ``losses`` carry the graph; ``values`` are the detached losses to compute weights from (averaged across ranks
        when ``sync_across_ranks`` is on). Weights computed from ``values`` pass no gradient.
        """
        raise NotImplementedError

    def shared_values(self, values: Tensor) -> Tensor:
        """The values every rank should compute its weights from: the mean over ranks (identity outside DDP)."""
        return mean_across_ranks(values)


def positive_temperature(owner: str, temperature: float) -> float:
    """``temperature`` as a float, or a ``ValueError`` naming ``owner`` unless it is finite and > 0."""
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}: temperature must be finite and > 0, got {value}")
    return value

