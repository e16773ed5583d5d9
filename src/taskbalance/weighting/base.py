"""The base class of every loss weighting, its input checks, and the registry ``WEIGHTINGS``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from taskbalance.registry import Registry
from taskbalance.weighting.distributed import mean_across_ranks


class LossWeighting(nn.Module):
    """Combines K per-task losses into the one scalar to backpropagate.

    Call ``total = method(losses)`` with ``losses`` a 1-D tensor of K task losses that still carry their graph (e.g.
    ``torch.stack([l1, l2, l3])``) and call ``total.backward()``. ``method.last_weights`` holds the detached per-task
    weights of the last call (shape ``[K]``); what a weight means is documented on each subclass. Before the first
    call it holds the weights the method starts from. Methods with epoch-level state (DWA) update it in
    :meth:`end_epoch`; the training loop calls it on every method once per epoch, and it is a no-op here.

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

    Subclasses set the class attributes ``formula`` (one line), ``paper`` (short citation) and ``hyperparameters``
    (name → meaning and default), which the CLI prints, and implement :meth:`combine`.
    """

    formula: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    hyperparameters: ClassVar[dict[str, str]] = {}
    # Methods that divide by or take the log of a loss need every loss > 0, not just finite.
    requires_positive_losses: ClassVar[bool] = False

    last_weights: Tensor

    def __init__(
        self,
        num_tasks: int,
        *,
        task_names: Sequence[str] | None = None,
        validate: bool = True,
        sync_across_ranks: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"{type(self).__name__}: num_tasks must be a positive int, got {num_tasks!r}")
        if task_names is not None:
            task_names = [str(name) for name in task_names]
            if len(task_names) != num_tasks:
                raise ValueError(
                    f"{type(self).__name__}: got {len(task_names)} task_names {task_names} for num_tasks={num_tasks}"
                )
        self.num_tasks = num_tasks
        self.task_names: list[str] | None = task_names
        self.validate = validate
        self.sync_across_ranks = sync_across_ranks
        # A buffer (not saved in state_dict) so that it follows .to(device) before the first call.
        self.register_buffer("last_weights", torch.ones(num_tasks), persistent=False)

    def forward(self, losses: Tensor) -> Tensor:
        """Return the scalar total loss for the K task ``losses`` and record ``last_weights``."""
        self.check_losses(losses, positive=self.requires_positive_losses)
        values = losses.detach()
        if self.sync_across_ranks:
            values = self.shared_values(values)
        total, weights = self.combine(losses, values)
        self.last_weights = weights.detach()
        return total

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(total, weights)``.

        ``losses`` carry the graph; ``values`` are the detached losses to compute weights from (averaged across ranks
        when ``sync_across_ranks`` is on). Weights computed from ``values`` pass no gradient.
        """
        raise NotImplementedError

    def end_epoch(self, mean_losses: Tensor) -> None:
        """Hook called once after every training epoch with the epoch-mean training losses (shape ``[K]``).

        A no-op except for methods with epoch-level state (DWA).
        """

    @property
    def needs_losses_after_step(self) -> bool:
        """True for methods that must see the same batch's losses after the optimizer step (FAMO).

        The training loop then evaluates the batch again (no gradient) and calls :meth:`after_step`.
        """
        return False

    def after_step(self, losses: Tensor) -> None:
        """Hook called after the optimizer step with the same batch's task losses (shape ``[K]``, detached).

        Called only when :attr:`needs_losses_after_step` is True; a no-op here.
        """

    def shared_values(self, values: Tensor) -> Tensor:
        """The values every rank should compute its weights from: the mean over ranks (identity outside DDP)."""
        return mean_across_ranks(values)

    def task_label(self, index: int) -> str:
        """``"task 2 ('depth')"``, or ``"task 2"`` without names, for error messages."""
        if self.task_names is None:
            return f"task {index}"
        return f"task {index} ({self.task_names[index]!r})"

    def check_shape(self, losses: Tensor, what: str = "losses") -> None:
        """Raise unless ``losses`` is a 1-D tensor of K values (no host sync)."""
        name = type(self).__name__
        if not isinstance(losses, Tensor):
            raise TypeError(
                f"{name}: {what} must be a 1-D tensor of {self.num_tasks} task losses (e.g. torch.stack(losses)), "
                f"got {type(losses).__name__}"
            )
        if losses.dim() != 1 or losses.shape[0] != self.num_tasks:
            raise ValueError(
                f"{name}: {what} must be a 1-D tensor of {self.num_tasks} task losses, got shape {tuple(losses.shape)}"
            )

    def check_losses(self, losses: Tensor, *, positive: bool, what: str = "losses") -> None:
        """Check shape, then (if ``validate``) that every value is finite and, if ``positive``, > 0.

        One combined reduction is read on the host; the detailed message is built only on failure.
        """
        self.check_shape(losses, what)
        if self.validate:
            self.check_values(losses.detach(), positive=positive, what=what)

    def check_values(self, values: Tensor, *, positive: bool, what: str = "losses") -> None:
        """Raise a ``ValueError`` naming the task and value unless every value is finite (and > 0 if ``positive``)."""
        # NaN fails both comparisons, so the positive check also rejects NaN and ±inf.
        ok = ((values > 0) & (values < math.inf)).all() if positive else torch.isfinite(values).all()
        if not bool(ok):
            self._raise_bad_value(values, positive=positive, what=what)

    def _raise_bad_value(self, values: Tensor, *, positive: bool, what: str) -> None:
        name = type(self).__name__
        for index, value in enumerate(values.tolist()):
            if not math.isfinite(value):
                raise ValueError(f"{name}: {what} of {self.task_label(index)} is {value}; every loss must be finite")
            if positive and value <= 0:
                raise ValueError(
                    f"{name}: {what} of {self.task_label(index)} is {value}; {name} divides by or takes the log of "
                    "each loss, so every loss must be > 0"
                )
        raise AssertionError("unreachable: a value failed the combined check but not the per-task one")

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}"


def positive_temperature(owner: str, temperature: float) -> float:
    """``temperature`` as a float, or a ``ValueError`` naming ``owner`` unless it is finite and > 0."""
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}: temperature must be finite and > 0, got {value}")
    return value


WEIGHTINGS: Registry[LossWeighting] = Registry("loss weighting")
