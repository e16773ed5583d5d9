"""The base class of every gradient method and its Gram-matrix specialisation."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from taskbalance.aggregation.engine import STRATEGIES, Strategy, per_task_gradients, task_leaves, task_roots
from taskbalance.distributed import (
    all_reduce_mean,
    all_reduce_sum,
    average_gradients,
    average_tensors_,
    is_distributed,
    world_size,
)
from taskbalance.method import (
    Method,
    Representation,
    SharedParameters,
    StepPasses,
    TaskLosses,
    call_after_step,
    is_unscaled,
)
from taskbalance.weighting.base import LossWeighting

Mode = Literal["parameters", "representation"]
MODES: tuple[str, ...] = ("parameters", "representation")


class GradientAggregation(Method):
    """Combines K per-task gradients of the shared part into one update direction.

    Call ``method.step(losses, shared_parameters=..., representation=rep)`` instead of ``loss.backward()``;
    afterwards every parameter's ``.grad`` holds its update direction (then ``optimizer.step()``):

    - shared parameters get the aggregated direction;
    - every other parameter a task reaches (its head) gets the gradient of ``Σ_k s_k·L_k`` (``s_k`` = the task
      scales below), i.e. the plain gradient of its own weighted loss.

    ``.grad`` is assigned, never accumulated, so nothing stale survives a call.

    Per-task gradients come from K ``torch.autograd.grad`` calls (``strategy="loop"``, the fastest on CPU) or from
    one vectorised call (``strategy="batched"``, for accelerators); ``"auto"`` (default) picks the one measured
    fastest on the device the gradients are on (:data:`~taskbalance.aggregation.engine.MEASURED_FASTEST`); see
    :mod:`taskbalance.aggregation.engine`. What they are taken with respect to is the mode:

    - ``mode="parameters"``: w.r.t. the shared parameters (exact per-task gradients, K backward passes through the
      encoder);
    - ``mode="representation"``: w.r.t. the shared representation (cheap: K head backwards), then one backward of
      the aggregated representation gradient through the encoder. The shared parameters must affect the losses
      only through the representation. MGDA-UB is MGDA in this mode.

    Composition with a loss weighting: ``weighting`` is applied to the losses first and its gradient
    ``s_k = ∂total/∂L_k`` scales task k's gradients before aggregation (``g_k ← s_k·g_k``); the weighting's own
    parameters (UW's log-variances) get the gradient of its total.

    ``last_weights`` (detached, ``[K]``) holds the effective weight of each raw task gradient ``∇L_k`` in the shared
    direction where the method defines it (``d = Σ_k last_weights_k ∇L_k``), else the task scales ``s_k``.

    Subclasses implement :meth:`aggregate` on stacked per-task gradients (or :meth:`GramAggregation.coefficients`);
    the benchmark's reference loop calls the same :meth:`aggregate` on a flattened ``K×P`` matrix.

    Args:
        num_tasks: K.
        weighting: an optional loss weighting composed with the method.
        mode: ``"parameters"`` or ``"representation"`` (default: the class's ``default_mode``).
        strategy: ``"auto"`` (default), ``"loop"`` or ``"batched"``: how the per-task gradients are computed (same
            values).
        task_names: optional names of the K tasks, for error messages.
        validate: raise a ``ValueError`` naming the method, task and value when a loss is NaN or ±inf (one host
            sync per step), instead of letting it reach the solver.
        sync_across_ranks: inside a ``torch.distributed`` job, make :meth:`step` compute the update of the global
            batch (the union of the ranks' batches) on every rank: the scales come from the ranks' mean losses; in
            parameters mode the K per-task gradients are averaged over the ranks before aggregation (exact for every
            method; O(K·P) bytes per step); in representation mode the K×K Gram matrix is summed over the ranks
            (exact for Gram-based methods; O(K²) bytes), each rank backpropagates its part of the direction, and the
            encoder's gradients are averaged (one gradient's bytes). Heads' gradients are averaged in both modes.
            Train the model without a DDP wrapper then. Outside a process group it does nothing.

    Subclasses take their own hyper-parameters plus ``**common`` (the keywords above), passed on to this class.
    """

    kind: ClassVar[str] = "gradient method"
    default_mode: ClassVar[Mode] = "parameters"
    # The modes the method is defined for; any other is refused at construction with an error naming the method.
    supported_modes: ClassVar[tuple[str, ...]] = MODES
    # Set by step() for aggregate() in representation mode: the representation values whose gradients the pieces
    # are, one per piece (detached); GradDrop weighs the gradients by their sign. Empty outside step().
    _piece_inputs: tuple[Tensor, ...] = ()

    def __init__(
        self,
        num_tasks: int,
        *,
        weighting: LossWeighting | None = None,
        mode: Mode | None = None,
        strategy: Strategy = "auto",
        task_names: Sequence[str] | None = None,
        validate: bool = True,
        sync_across_ranks: bool = False,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, validate=validate)
        name = type(self).__name__
        if strategy not in STRATEGIES:
            raise ValueError(f"{name}: strategy must be one of {STRATEGIES}, got {strategy!r}")
        mode = self.default_mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"{name}: mode must be one of {MODES}, got {mode!r}")
        if mode not in self.supported_modes:
            raise ValueError(f"{name}: supports mode {' or '.join(map(repr, self.supported_modes))} only, got {mode!r}")
        if weighting is not None:
            if not isinstance(weighting, LossWeighting):
                raise TypeError(f"{name}: weighting must be a LossWeighting, got {type(weighting).__name__}")
            if weighting.num_tasks != num_tasks:
                raise ValueError(f"{name}: weighting has num_tasks={weighting.num_tasks}, expected {num_tasks}")
        self.mode: Mode = mode
        self.strategy: Strategy = strategy
        self.weighting = weighting
        self.sync_across_ranks = bool(sync_across_ranks)
        self._reduce_gram = False  # set by step(): Gram of the global batch in distributed representation mode
        # Set by step() for aggregate(): the factor the .grad of the method's own parameters carry (the loss scale of
        # an fp16 step), as GradScaler divides every .grad the optimizer holds by it.
        self._own_gradient_scale: float | Tensor = 1.0

    @classmethod
    def step_passes(cls, num_tasks: int, options: Mapping[str, Any]) -> StepPasses:
        """One backward pass through the encoder per task in parameters mode, one in representation mode.

        Example:
            >>> from taskbalance.aggregation import PCGrad
            >>> PCGrad.step_passes(3, {}), PCGrad.step_passes(3, {"mode": "representation"})
            (StepPasses(forward=1, encoder_backward=3), StepPasses(forward=1, encoder_backward=1))
        """
        mode = options.get("mode") or cls.default_mode
        return StepPasses(encoder_backward=num_tasks if mode == "parameters" else 1)

    # ----------------------------------------------------------------------------------------------- the step
    def step(
        self, losses: TaskLosses, *, shared_parameters: SharedParameters = None, representation: Representation = None,
        loss_scale: float | Tensor = 1.0,
    ) -> None:
        """Fill ``.grad`` of the shared parameters with the aggregated direction and of the heads with their own.

        Args:
            losses: 1-D tensor of the K task losses (``torch.stack``), carrying their graph, or a list of the K
                scalar losses (slightly cheaper with costly heads: see
                :func:`~taskbalance.aggregation.engine.per_task_gradients`).
            shared_parameters: the encoder's parameters (``model.shared_parameters()``).
            representation: ``model.shared(x)`` (a tensor or a tuple of tensors); required in representation mode,
                optional in parameters mode.
        """
        task_losses = losses
        if not isinstance(losses, Tensor):
            task_losses = list(losses)
            losses = torch.stack(task_losses)
        self.check_step_losses(losses)
        shared = self.trainable_shared(shared_parameters)
        reps = self._representation_tensors(representation)
        shared_ids = {id(p) for p in shared}
        if self.mode == "representation":
            stop_at = [r.grad_fn for r in reps]
            targets: Sequence[Tensor] = reps
        else:
            stop_at = []
            targets = shared
        reached = [task_leaves(root, stop_at=stop_at) for root in task_roots(task_losses)]
        if self.mode == "representation":
            self._check_heads_avoid_shared(reached, shared_ids)
        elif not any(id(leaf) in shared_ids for leaves in reached for leaf in leaves):
            self._raise_unreached(len(targets))  # before any state (GradNorm's first losses) moves
        extras = [[leaf for leaf in leaves if id(leaf) not in shared_ids] for leaves in reached]

        distributed = self.sync_across_ranks and is_distributed()
        if distributed:
            # Every rank computes the scales from the global batch's losses (the mean of the ranks' losses).
            global_losses = all_reduce_mean(losses.detach())
            scales = self.task_scales(global_losses, self._weighting_scales(global_losses, loss_scale))
        else:
            scales = self.task_scales(losses, self._weighting_scales(losses, loss_scale))

        scaled = not is_unscaled(loss_scale)
        if scaled:
            task_losses = [loss * loss_scale for loss in (task_losses if isinstance(task_losses, list) else losses)]
        stacked, by_extra = per_task_gradients(task_losses, targets, extras, strategy=self.strategy)
        if all(piece is None for piece in stacked):  # (free to check: nothing is read) no update of the shared part
            self._raise_unreached(len(targets))
        self._write_task_gradients(extras, by_extra, scales)  # heads keep the scale, as a scaled backward would

        used = [i for i, piece in enumerate(stacked) if piece is not None]
        pieces = [piece for piece in stacked if piece is not None]
        del stacked
        target_dtypes = [piece.dtype for piece in pieces]
        # Half-precision representation gradients (autocast) are aggregated in float32.
        pieces = [p.float() if p.dtype in (torch.float16, torch.bfloat16) else p for p in pieces]
        if scaled:
            pieces = [p / loss_scale for p in pieces]
            # The heads' gradients count too: an overflow there alone makes the GradScaler skip the step as well, and
            # a method with running state (GradVac, DB-MTL, MoCo) must not advance it on a step that is not taken.
            checked = [*pieces, *(grad for grads in by_extra for grad in grads if grad is not None)]
            overflow = torch.stack([(~torch.isfinite(p)).any() for p in checked]).any().float()
            if distributed:  # one rank's overflow skips the step on every rank (they must run the same collectives)
                overflow = all_reduce_sum(overflow)
            if bool(overflow > 0):
                # An overflowing scaled backward: never fed to a solver. inf in the shared gradients makes the
                # GradScaler skip this step and lower its scale.
                for p in shared:
                    p.grad = torch.full_like(p, math.inf)
                return
        if distributed and self.mode == "parameters":
            average_tensors_(pieces)  # the global batch's per-task gradients: O(K·P), exact for every method
        self._reduce_gram = distributed and self.mode == "representation"
        self._own_gradient_scale = loss_scale
        self._piece_inputs = tuple(targets[i].detach() for i in used) if self.mode == "representation" else ()
        try:
            directions, weights = self.aggregate(pieces, scales)
        finally:
            self._reduce_gram = False
            self._own_gradient_scale = 1.0
            self._piece_inputs = ()  # not kept: they hold the activations' memory
        self.last_weights = weights.detach()

        directions = [
            (d * loss_scale if scaled else d).to(dtype) for d, dtype in zip(directions, target_dtypes, strict=True)
        ]
        for p in shared:
            p.grad = None
        if self.mode == "representation":
            if used:
                torch.autograd.backward([targets[i] for i in used], grad_tensors=directions)
        else:
            for i, direction in zip(used, directions, strict=True):
                targets[i].grad = direction
        if distributed:
            # Heads saw only this rank's samples; in representation mode the encoder too. Parameters-mode shared
            # gradients are already those of the global batch (identical on every rank) and are not reduced again.
            local = [leaf for leaves in extras for leaf in leaves]
            average_gradients([*local, *shared] if self.mode == "representation" else local)

    def aggregate(self, pieces: list[Tensor], scales: Tensor) -> tuple[list[Tensor], Tensor]:
        """The shared update direction from stacked per-task gradients.

        Args:
            pieces: one tensor ``[K, ...]`` per shared tensor (parameter or representation); ``pieces[i][k]`` is the
                raw (unscaled) gradient of task k. A single flattened ``K×P`` matrix is a valid input too.
            scales: ``[K]`` task scales ``s_k`` (ones without a weighting); task k's gradient is ``s_k·pieces[i][k]``.

        Returns:
            The direction, one tensor per piece (shape ``pieces[i].shape[1:]``), and the effective weights ``[K]``.
        """
        raise NotImplementedError

    def task_scales(self, losses: Tensor, weighting_scales: Tensor) -> Tensor:
        """The factors ``s_k`` applied to task k's gradients; the weighting's ``∂total/∂L_k`` unless overridden."""
        return weighting_scales

    def end_epoch(self, mean_losses: Tensor) -> None:
        """Epoch hook, forwarded to the composed weighting (DWA needs it)."""
        if self.weighting is not None:
            self.weighting.end_epoch(mean_losses)

    @property
    def needs_losses_after_step(self) -> bool:
        """Whether the composed weighting needs the batch's losses after the optimizer step (FAMO)."""
        return self.weighting is not None and self.weighting.needs_losses_after_step

    def after_step(self, losses: Tensor, *, applied: bool | Tensor = True) -> None:
        """After-step hook, forwarded to the composed weighting."""
        if self.weighting is not None:
            call_after_step(self.weighting, losses, applied)

    # ----------------------------------------------------------------------------------------------- helpers
    def _raise_unreached(self, count: int) -> None:
        what = "representation tensors" if self.mode == "representation" else "shared parameters"
        raise ValueError(
            f"{type(self).__name__}: none of the {count} {what} is reached by the task losses; pass "
            "shared_parameters=model.shared_parameters() (or representation=) of the model that computed them"
        )

    def trainable_shared(self, shared_parameters: Iterable[nn.Parameter] | None) -> list[nn.Parameter]:
        """The shared parameters that require grad; an error naming the method when there are none."""
        name = type(self).__name__
        if shared_parameters is None:
            raise ValueError(f"{name}: step() needs shared_parameters=model.shared_parameters()")
        shared = [p for p in shared_parameters if p.requires_grad]
        if not shared:
            raise ValueError(f"{name}: shared_parameters is empty (or nothing in it requires grad)")
        return shared

    def check_step_losses(self, losses: Tensor) -> None:
        """Raise unless ``losses`` is a 1-D tensor of K losses that carry their graph and (if ``validate``) are
        finite (> 0 for methods that log them)."""
        self.check_shape(losses)
        if losses.grad_fn is None:
            raise ValueError(f"{type(self).__name__}: losses carry no graph (computed under no_grad or detached?)")
        if self.validate:
            self.check_values(losses.detach(), positive=self.requires_positive_losses)

    def _representation_tensors(self, representation: Tensor | Sequence[Tensor] | None) -> tuple[Tensor, ...]:
        name = type(self).__name__
        if representation is None:
            if self.mode == "representation":
                raise ValueError(f"{name}: mode='representation' needs representation=model.shared(x)")
            return ()
        reps = (representation,) if isinstance(representation, Tensor) else tuple(representation)
        if self.mode == "representation":
            for index, rep in enumerate(reps):
                if not isinstance(rep, Tensor) or rep.grad_fn is None:
                    raise ValueError(
                        f"{name}: representation[{index}] must be a tensor computed by the encoder (with a grad_fn), "
                        f"got {type(rep).__name__} without graph"
                    )
        return reps

    def _weighting_scales(self, losses: Tensor, loss_scale: float | Tensor = 1.0) -> Tensor:
        """``∂total/∂L_k`` of the composed weighting (ones without one); sets the weighting parameters' ``.grad``
        (``loss_scale`` times their gradient, as a scaled step's every ``.grad``)."""
        if self.weighting is None:
            return torch.ones(self.num_tasks, dtype=losses.dtype, device=losses.device)
        return self.weighting.loss_scales(losses, loss_scale=loss_scale)

    def _check_heads_avoid_shared(self, reached: list[list[Tensor]], shared_ids: set[int]) -> None:
        # A shared parameter reached by a head without passing the representation would lose that gradient part.
        for k, leaves in enumerate(reached):
            hit = [tuple(p.shape) for p in leaves if id(p) in shared_ids]
            if hit:
                raise ValueError(
                    f"{type(self).__name__}: the loss of {self.task_label(k)} uses shared parameters of shape {hit} "
                    "outside the representation; use mode='parameters'"
                )

    @staticmethod
    def _write_task_gradients(extras: list[list[Tensor]], by_extra: list[list[Tensor | None]], scales: Tensor) -> None:
        totals: dict[int, tuple[Tensor, Tensor]] = {}
        for k, (leaves, grads) in enumerate(zip(extras, by_extra, strict=True)):
            for leaf, grad in zip(leaves, grads, strict=True):
                if grad is None:
                    continue
                scaled = grad * scales[k]
                key = id(leaf)
                totals[key] = (leaf, totals[key][1] + scaled) if key in totals else (leaf, scaled)
        for leaf, grad in totals.values():
            leaf.grad = grad

    def extra_repr(self) -> str:
        strategy = "" if self.strategy == "auto" else f", strategy={self.strategy!r}"
        return f"num_tasks={self.num_tasks}, mode={self.mode!r}{strategy}"


class GramAggregation(GradientAggregation):
    """A method whose direction is a combination ``d = Σ_k c_k·g_k`` with ``c`` a function of the Gram matrix.

    ``G_ij = g_i·g_j`` is summed over the pieces (per parameter, no flattening of the whole gradient); the scaled
    Gram is ``diag(s)·G·diag(s)``; ``c = coefficients(G)``; the direction of each piece is ``Σ_k (c_k·s_k)·piece[k]``,
    and ``last_weights = c·s``.
    """

    def coefficients(self, gram: Tensor) -> Tensor:
        """``c`` (shape ``[K]``) from the ``K×K`` Gram matrix of the (scaled) task gradients."""
        raise NotImplementedError

    def aggregate(self, pieces: list[Tensor], scales: Tensor) -> tuple[list[Tensor], Tensor]:
        gram = gram_matrix(pieces)
        if self._reduce_gram:
            # Representation gradients of different ranks cover disjoint samples, each rank's scaled by 1/R in the
            # global-batch mean, so the global Gram is Σ_r G_r / R²: K×K numbers instead of K gradients.
            gram = all_reduce_sum(gram) / world_size() ** 2
        scaled_gram = gram * scales[:, None] * scales[None, :]
        weights = self.coefficients(scaled_gram).to(gram.dtype) * scales
        return combine(pieces, weights), weights


def gram_matrix(pieces: list[Tensor]) -> Tensor:
    """``Σ_pieces P·Pᵀ`` with each piece viewed as ``K×n`` (a view, no copy, for contiguous pieces)."""
    flat = pieces[0].reshape(pieces[0].shape[0], -1)
    gram = flat @ flat.T
    for piece in pieces[1:]:
        flat = piece.reshape(piece.shape[0], -1)
        gram = gram.addmm(flat, flat.T)
    return gram


def combine(pieces: list[Tensor], weights: Tensor) -> list[Tensor]:
    """``Σ_k weights_k·piece[k]`` for every piece."""
    return [torch.tensordot(weights.to(piece.dtype), piece, dims=1) for piece in pieces]

