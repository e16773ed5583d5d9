"""The one contract every multi-task method follows, loss weighting or gradient method.

A training loop drives any method the same way, per step and per epoch::

    losses = [task.loss(predictions[name], targets[name]) for name, task in tasks.items()]
    method.step(losses, shared_parameters=model.shared_parameters(), representation=rep)  # fills every .grad
    optimizer.step()
    if method.needs_losses_after_step:          # FAMO: the same batch's losses after the step
        method.after_step(torch.stack(losses_after), applied=step_was_applied)  # False: fp16 skipped it
    ...
    method.end_epoch(mean_training_losses)      # once per epoch (DWA, STCH's warm-up)

``method.last_weights`` (detached, ``[K]``) holds the per-task weights of the last step, for logging. All state a
method carries — parameters, buffers, random generators, step and epoch counters — is in ``method.state_dict()``,
so a checkpoint of a run needs nothing else from the method.

The two kinds differ only in what :meth:`Method.step` does: a loss weighting backpropagates one weighted total
(:class:`~taskbalance.weighting.LossWeighting`), a gradient method combines per-task gradients of the shared part
(:class:`~taskbalance.aggregation.GradientAggregation`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskbalance.types import SearchSpace

TaskLosses = Tensor | Sequence[Tensor]
"""The K task losses of a step, carrying their graph: a list of scalars or their ``torch.stack``."""
SharedParameters = Iterable[nn.Parameter] | None
"""The parameters all tasks share (``model.shared_parameters()``)."""
Representation = Tensor | Sequence[Tensor] | None
"""The shared encoder's output for the batch (a tensor or a tuple of tensors)."""


@dataclass(frozen=True)
class StepPasses:
    """What one training step of a method runs per sample, in passes through the model.

    Attributes:
        forward: forward passes of the whole model (FAMO's second one measures the same batch after the step).
        encoder_backward: backward passes through the shared encoder (a gradient method in parameters mode: one
            per task; a mean over steps where a method alternates, Nash-MTL with ``update_weights_every``); the
            heads are backpropagated once each in every case.

    A backward pass costs about twice its forward pass (the gradients with respect to each layer's input and to its
    weights), so a step costs ``forward·F + 2·(encoder_backward·F_shared + F_heads)`` FLOPs, with ``F`` the
    forward pass, ``F_shared`` its encoder's and ``F_heads`` its heads' part: ``3·F`` for a loss weighting.

    Example:
        >>> StepPasses(encoder_backward=3).flops(shared=100, heads=10)  # 110 forward + 2·(300 + 10) backward
        730
    """

    forward: float = 1
    encoder_backward: float = 1

    def flops(self, *, shared: float, heads: float) -> float:
        return self.forward * (shared + heads) + 2 * (self.encoder_backward * shared + heads)


def call_after_step(method: Method, losses: Tensor, applied: bool | Tensor) -> None:
    """``method.after_step(losses, applied=applied)``, without the keyword when the step was applied, so that an
    ``after_step(self, losses)`` written before ``applied`` existed still runs in fp32 and bf16."""
    if applied is True:
        method.after_step(losses)
    else:
        method.after_step(losses, applied=applied)


def is_unscaled(loss_scale: float | Tensor) -> bool:
    """True for the plain ``1.0`` of unscaled training (then nothing is multiplied: fp32 runs stay bit-identical)."""
    return isinstance(loss_scale, int | float) and loss_scale == 1.0


class Method(nn.Module):
    """Base of every method: K tasks in, every ``.grad`` filled by :meth:`step`, weights in ``last_weights``.

    Args:
        num_tasks: K, the number of task losses per step.
        task_names: optional names of the K tasks, used in error messages.
        validate: check every step's losses (finite; > 0 where the method inverts or logs them) and raise a
            ``ValueError`` naming the method, the task and the value. Costs one host sync per step (one combined
            reduction read with ``bool()``); ``validate=False`` skips it, and a bad loss then propagates as inf/NaN.
            Shape checks are always done (they need no sync).

    Subclasses set the class attributes ``kind`` (what ``taskbalance methods`` shows), ``formula`` (one line),
    ``paper`` (short citation), ``hyperparameters`` (name → meaning and default) and, for a method outside
    taskbalance, ``label`` (its display name in tables; the built-in methods' are in ``taskbalance.methods.LABELS``).
    """

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    hyperparameters: ClassVar[dict[str, str]] = {}
    # Raised by one whenever the method's behaviour under the same options changes (a corrected formula, a new
    # default, other recorded weights): a revision above 0 enters the identity of every run of the method
    # (``RunConfig.run_id``), so a store never passes a run trained by the old behaviour off as one of the new.
    # Not raised for fixes that change only error paths or the steps fp16's GradScaler skips.
    revision: ClassVar[int] = 0
    # Methods that divide by or take the log of a loss need every loss > 0, not just finite.
    requires_positive_losses: bool = False
    # Methods that learn a weight from each loss (UW, IMTL-L) need every loss ≥ 0; 0 is a task with nothing to learn
    # in this batch (a segmentation batch whose every pixel is ignored).
    requires_nonnegative_losses: ClassVar[bool] = False
    # Why, for the error message a loss ≤ 0 (< 0) gets (the method's name comes first).
    positive_losses_reason: ClassVar[str] = "divides by or takes the log of each loss"
    # Methods with a per-task ``kinds`` option that ``taskbalance.methods.create`` fills from Task.likelihood (UW).
    uses_task_likelihoods: ClassVar[bool] = False
    # Methods with parameters of their own that the run's optimizer trains (UW, IMTL-L, GradNorm): only their runs
    # take ``RunConfig.method_lr`` into their identity (for the others it changes nothing). The loop refuses a
    # method_lr for a method that has parameters but does not declare them here.
    learns_parameters: ClassVar[bool] = False

    last_weights: Tensor

    def __init__(self, num_tasks: int, *, task_names: Sequence[str] | None = None, validate: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"{name}: num_tasks must be a positive int, got {num_tasks!r}")
        if task_names is not None:
            task_names = [str(task) for task in task_names]
            if len(task_names) != num_tasks:
                raise ValueError(f"{name}: got {len(task_names)} task_names {task_names} for num_tasks={num_tasks}")
        self.num_tasks = num_tasks
        self.task_names: list[str] | None = task_names
        self.validate = bool(validate)
        # A buffer (not saved in state_dict) so that it follows .to(device) before the first step.
        self.register_buffer("last_weights", torch.ones(num_tasks), persistent=False)

    # ------------------------------------------------------------------------------------------ the contract
    def step(
        self, losses: TaskLosses, *, shared_parameters: SharedParameters = None, representation: Representation = None,
        loss_scale: float | Tensor = 1.0,
    ) -> None:
        """Fill the ``.grad`` of every parameter the losses reach (and of the method's own parameters).

        Args:
            losses: the K task losses carrying their graph: a list of scalars, or their ``torch.stack``.
            shared_parameters: the encoder's parameters (gradient methods need them; loss weightings ignore them).
            representation: the encoder's output (gradient methods in representation mode need it).
            loss_scale: mixed-precision loss scaling (``GradScaler.get_scale()``): the backward passes run on
                ``loss_scale·L_k`` so that float16 gradients do not underflow, and every ``.grad`` holds
                ``loss_scale`` times the update, for ``GradScaler.step`` to unscale. Gradient methods aggregate the
                *unscaled* per-task gradients (several are not scale-invariant) and, when those overflowed, write
                inf into the shared gradients without running their solver, so that ``GradScaler`` skips the step.
        """
        raise NotImplementedError

    def end_epoch(self, mean_losses: Tensor) -> None:
        """Called once after every training epoch with the epoch-mean training losses (``[K]``); a no-op here."""

    def diagnostics(self) -> dict[str, float]:
        """Counts the run records with its result when it ends, for events a method survives rather than raises
        on (e.g. Nash-MTL's steps without a bargaining solution under ``on_solve_failure="keep_previous"``);
        ``RunResult.method_diagnostics`` and the store keep them, the benchmark's notes report any above 0. None
        here."""
        return {}

    @property
    def needs_losses_after_step(self) -> bool:
        """True when the method must see the same batch's losses after the optimizer step (FAMO)."""
        return False

    def after_step(self, losses: Tensor, *, applied: bool | Tensor = True) -> None:
        """Called after the optimizer step with the same batch's detached losses, when
        :attr:`needs_losses_after_step`; a no-op here.

        Args:
            losses: ``[K]``, the batch's task losses after the step.
            applied: whether the optimizer applied the step: ``False`` when mixed precision's ``GradScaler`` skipped
                it for an overflow (the parameters did not move, so nothing the method measures after it is the
                step's effect). A 0-dim bool tensor under fp16, so that the loop needs no host sync to pass it; the
                loop passes it only under fp16, so an override without the keyword still runs in fp32 and bf16.
        """

    @classmethod
    def step_passes(cls, num_tasks: int, options: Mapping[str, Any]) -> StepPasses:
        """The passes one training step runs with these options (for compute estimates, e.g. ``taskbalance bench
        --dry-run``): one forward and one backward here, which is every loss weighting but FAMO."""
        return StepPasses()

    @classmethod
    def search_grid(cls, space: SearchSpace) -> list[dict[str, Any]]:
        """The hyper-parameter points the benchmark protocol searches for this method, given the preset's ``space``.

        One empty point (the method's defaults) here; methods with a grid (UW-SO's temperatures, Scalarization's
        simplex) override it, so the protocol never branches on method names.
        """
        return [{}]

    # ------------------------------------------------------------------------------------------ input checks
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

    def check_losses(self, losses: Tensor, *, positive: bool, what: str = "losses", nonnegative: bool = False) -> None:
        """Check the shape, then (if ``validate``) that every value is finite and, if ``positive``, > 0 (if
        ``nonnegative``, ≥ 0)."""
        self.check_shape(losses, what)
        if self.validate:  # "losses after the step" → "the loss after the step (of task k)"
            singular = "the " + what.replace("losses", "loss", 1)
            self.check_values(losses.detach(), positive=positive, what=singular, nonnegative=nonnegative)

    def check_values(
        self, values: Tensor, *, positive: bool, what: str = "the loss", nonnegative: bool = False
    ) -> None:
        """Raise a ``ValueError`` naming the task and value unless every value is finite (and > 0 if ``positive``,
        ≥ 0 if ``nonnegative``).

        One combined reduction is read on the host; the detailed message is built only on failure.
        """
        # NaN fails both comparisons, so the bounded checks also reject NaN and ±inf.
        if positive:
            ok = ((values > 0) & (values < math.inf)).all()
        elif nonnegative:
            ok = ((values >= 0) & (values < math.inf)).all()
        else:
            ok = torch.isfinite(values).all()
        if not bool(ok):
            self._raise_bad_value(values, positive=positive, nonnegative=nonnegative, what=what)

    def _raise_bad_value(self, values: Tensor, *, positive: bool, nonnegative: bool, what: str) -> None:
        name = type(self).__name__
        for index, value in enumerate(values.tolist()):
            if not math.isfinite(value):
                raise ValueError(f"{name}: {what} of {self.task_label(index)} is {value}; every loss must be finite")
            if (positive and value <= 0) or (nonnegative and value < 0):
                # An exact 0 is rarely a perfect fit: mostly a batch without a labelled element of the task.
                hint = ("; a loss of exactly 0 usually means the batch held no labelled element of this task (e.g. "
                        "every pixel ignored), which a method that accepts 0, such as EW, UW or IMTL-L, trains through"
                        if positive and value == 0 and what == "the loss" else "")
                raise ValueError(
                    f"{name}: {what} of {self.task_label(index)} is {value}; {name} {self.positive_losses_reason}, "
                    f"so every loss must be {'> 0' if positive else '≥ 0'}{hint}"
                )
        raise AssertionError("unreachable: a value failed the combined check but not the per-task one")

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}"


class RandomState:
    """Mixin for methods that draw random numbers: their CPU ``torch.Generator`` travels in ``state_dict``.

    The class sets ``self.generator``; its state is saved as the module's extra state and restored by
    ``load_state_dict``, so a resumed run draws exactly the numbers an uninterrupted one would.

    Example:
        >>> from taskbalance.weighting import RLW
        >>> a = RLW(2, seed=0)
        >>> _ = a(torch.ones(2))
        >>> b = RLW(2, seed=1)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> bool(torch.equal(torch.rand(3, generator=a.generator), torch.rand(3, generator=b.generator)))
        True
    """

    generator: torch.Generator

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        # A checkpoint loaded with map_location onto an accelerator carries the state there too; a CPU generator
        # takes its state only as a CPU byte tensor.
        self.generator.set_state(state["generator"].to("cpu", torch.uint8))
