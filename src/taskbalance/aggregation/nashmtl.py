"""Nash-MTL: the Nash bargaining solution of the tasks' utilities g_k·d."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.clipping import check_max_norm, clip_after_step
from taskbalance.aggregation.engine import task_leaves, task_roots
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import (
    SOLVE_TOLERANCE,
    check_task_gradients,
    nash_bargaining,
    relative_residual,
    residual_tensor,
)
from taskbalance.distributed import is_distributed
from taskbalance.method import Representation, SharedParameters, StepPasses, TaskLosses, is_unscaled

SOLVE_FAILURE_CHOICES = ("raise", "keep_previous")


@AGGREGATIONS.register("nashmtl")
class NashMTL(GramAggregation):
    """Nash-MTL: ``d = Σ_k α_k g_k`` with ``α > 0`` solving ``Gα = 1/α`` (elementwise), ``G = JJᵀ``.

    Navon et al. 2022, "Multi-Task Learning as a Bargaining Game" (ICML), Eq. 3: the bargaining solution maximises
    ``Σ_k log(g_k·d)`` over ``|d| ≤ 1`` up to scale, and its weights solve ``Gα = 1/α`` on the raw Gram matrix, so
    ``g_k·d = 1/α_k`` and ``|d|² = αᵀGα = K`` whatever the gradient scale: a normalised step. The authors' code
    divides G by ``‖G‖_F`` for its solver but multiplies that factor back into the constraint, which solves the same
    system on the raw G; so does this class. ``Gα = 1/α`` is the stationary point of the convex
    ``½αᵀGα − Σ log α``, solved by damped Newton in torch (see
    :func:`~taskbalance.aggregation.solvers.nash_bargaining`) instead of the authors' sequence of cvxpy problems.

    The bargaining solution exists only when the task gradients are linearly independent. With ``validate`` (two
    host reads per solve), a task whose gradient is exactly zero (or not finite) raises a ``ValueError`` naming it,
    and so does a solve that does not reach the equations, relative residual ``|Gα − 1/α| / max(1/α)`` above 1e-6
    after ``iterations`` Newton steps (linearly dependent gradients: e.g. (1, 0), (0, 1), (−1, −1), where α grows
    without bound, or two exactly opposite ones, where the Newton system is singular). Without ``validate`` such a
    solve returns the huge or non-finite α as it stands.

    ``on_solve_failure="keep_previous"`` is the authors' choice instead: their code falls back to the previous step's
    α when its solver fails, so a long training survives a step of dependent gradients (or of a task whose gradient
    is zero, e.g. a batch in which all its labels are ignored). Then every solve is checked as above, with or
    without ``validate`` (one host read per solve; with ``validate`` one more, the gradients' finiteness check), a
    failed one reuses the α of the last solved step (all ones before the first: the plain sum), and
    ``solve_failures`` counts them (saved in ``state_dict``, and reported at the end of a run by
    :meth:`diagnostics`: ``RunResult.method_diagnostics``, the store, the benchmark's notes). A gradient that is not
    finite still raises with ``validate``: that is a diverged model, not a hard step. The default ``"raise"`` keeps
    every failure loud. The check is stricter than the authors' code, which keeps its solver's last iterate without
    testing it: a solve that only nearly reaches ``Gα = 1/α`` falls back here.

    ``max_norm=1.0`` (the authors' default): after the step, the shared parameters' gradients are clipped to total
    norm ``max_norm`` (``torch.nn.utils.clip_grad_norm_``, no host sync); ``0`` turns it off. In representation mode
    the clip acts on the shared parameters' gradients after the encoder backward, as in parameters mode. Since
    ``|d|² = K``, the clip acts on every step for K ≥ 2 at the default; ``last_weights`` is ``α·s`` times the clip
    factor ``min(1, max_norm / |d|)``, so ``d = Σ_k last_weights_k ∇L_k`` holds for the applied direction.

    ``update_weights_every = n`` is the authors' speed option: α is solved on every n-th step (the first included)
    and reused in between, where the step is a single backward of ``Σ_k α_k·s_k·L_k`` — the same shared direction
    ``Σ_k α_k·s_k·g_k`` as the full step with that α, at the cost of one backward instead of K. Each task's own head
    then gets ``s_k·∇L_k`` as in a full step (its gradient from the single backward divided by ``α_k``); a parameter
    outside the shared ones that several tasks use makes the step a full one. α and the step count are saved in
    ``state_dict``. Only a step whose α was solved (or reused) counts: a solve step that the GradScaler skips (its
    scaled gradients overflowed, so the solver never ran) or whose solve raised is tried again on the next step.

    Example:
        >>> import torch
        >>> NashMTL(2).coefficients(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))  # α_k² G_kk = 1
        tensor([1.0000, 0.5000])
    """

    formula = "d = Σ_k α_k g_k, Gα = 1/α; shared gradient clipped to max_norm"
    # 1: last_weights include the clip factor (the recorded weights change; the update does not).
    revision: ClassVar[int] = 1
    paper = "Navon et al., ICML 2022"
    hyperparameters: ClassVar[dict[str, str]] = {
        "iterations": "damped Newton iterations of the bargaining solver (default 30)",
        "update_weights_every": "solve α every n steps and reuse it in between with one backward (default 1)",
        "max_norm": "clip the shared parameters' gradient norm to this after the step; 0 = off (default 1.0)",
        "on_solve_failure": "'raise' (default) or 'keep_previous': reuse the last solved α, as the authors' code",
    }

    alpha: Tensor

    def __init__(
        self,
        num_tasks: int,
        *,
        iterations: int = 30,
        update_weights_every: int = 1,
        max_norm: float = 1.0,
        on_solve_failure: str = "raise",
        **common: Any,
    ) -> None:
        super().__init__(num_tasks, **common)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"NashMTL: iterations must be a positive int, got {iterations!r}")
        every = update_weights_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"NashMTL: update_weights_every must be a positive int, got {every!r}")
        if on_solve_failure not in SOLVE_FAILURE_CHOICES:
            raise ValueError(
                f"NashMTL: on_solve_failure must be one of {', '.join(map(repr, SOLVE_FAILURE_CHOICES))}, got "
                f"{on_solve_failure!r}"
            )
        self.iterations = iterations
        self.on_solve_failure = on_solve_failure
        self.solve_failures = 0
        self.max_norm = check_max_norm("NashMTL", max_norm)
        self.update_weights_every = every
        self.steps = 0
        self._solved = False  # set by coefficients(): whether step() reached the solver
        self.register_buffer("alpha", torch.ones(num_tasks))

    @classmethod
    def step_passes(cls, num_tasks: int, options: Mapping[str, Any]) -> StepPasses:
        """In parameters mode K encoder backward passes on a solve step and one on each of the
        ``update_weights_every − 1`` steps that reuse α: their mean per step (a single process; in a distributed
        job every step is a full one, K passes).

        Example:
            >>> NashMTL.step_passes(3, {"update_weights_every": 4})  # (3 + 1 + 1 + 1) / 4
            StepPasses(forward=1, encoder_backward=1.5)
        """
        passes = super().step_passes(num_tasks, options)
        every = options.get("update_weights_every", 1)
        if isinstance(every, bool) or not isinstance(every, int) or every <= 1:
            return passes  # (a bad value is named when the method is built)
        return StepPasses(encoder_backward=(passes.encoder_backward + every - 1) / every)

    def coefficients(self, gram: Tensor) -> Tensor:
        if self.on_solve_failure == "keep_previous":
            return self._coefficients_or_previous(gram)
        check_task_gradients(self, torch.diagonal(gram), "Gα = 1/α needs every gradient non-zero")
        matrix = gram.to(torch.float64)
        alpha = nash_bargaining(matrix, self.iterations)  # float64: checked before rounding
        if self.validate:
            self._check_solution(matrix, alpha)
        alpha = alpha.to(gram.dtype)
        self.alpha = alpha.detach().to(self.alpha.dtype)
        self._solved = True
        return alpha

    def _coefficients_or_previous(self, gram: Tensor) -> Tensor:
        """The bargaining α, or the last solved one where no solution is found (one host read)."""
        check_task_gradients(self, torch.diagonal(gram))  # only a non-finite gradient raises, and only with validate
        matrix = gram.to(torch.float64)
        # The solver runs on any G (it never raises), so one read decides: every gradient non-zero, α finite and
        # Gα = 1/α reached.
        alpha = nash_bargaining(matrix, self.iterations)
        solved = (torch.diagonal(matrix) > 0).all() & torch.isfinite(alpha).all() & (
            residual_tensor(matrix, alpha, alpha.reciprocal()) <= SOLVE_TOLERANCE)
        self._solved = True  # a step with the previous α is a step taken, as in the authors' code
        if not bool(solved):
            self.solve_failures += 1
            return self.alpha.to(gram.dtype)
        self.alpha = alpha.detach().to(self.alpha.dtype)
        return alpha.to(gram.dtype)

    def _check_solution(self, matrix: Tensor, alpha: Tensor) -> None:
        """Raise unless ``Gα = 1/α`` holds to a relative residual of 1e-6 (one host read)."""
        error = relative_residual(matrix, alpha, alpha.reciprocal())
        if error <= SOLVE_TOLERANCE:
            return
        singular = "" if bool(torch.isfinite(alpha).all()) else "; the Newton system was singular"
        raise ValueError(
            f"NashMTL: no positive solution of Gα = 1/α found in {self.iterations} Newton iterations (relative "
            f"residual {error:.3g}{singular}); the task gradients are linearly dependent (e.g. two opposite "
            "gradients, or three that sum to zero), so no bargaining solution exists, or nearly so"
        )

    def step(
        self, losses: TaskLosses, *, shared_parameters: SharedParameters = None, representation: Representation = None,
        loss_scale: float | Tensor = 1.0,
    ) -> None:
        reuse = self.steps % self.update_weights_every != 0
        shared = self.trainable_shared(shared_parameters)
        weights_before = self.last_weights
        self._solved = False
        if reuse and self._backward_with_last_alpha(losses, shared, loss_scale):
            self.steps += 1
        else:
            super().step(losses, shared_parameters=shared, representation=representation, loss_scale=loss_scale)
            # A step whose scaled gradients overflowed returned before the solver (the GradScaler skips it): not
            # counting it makes the next step solve instead of reusing a stale α for update_weights_every − 1 steps.
            if self._solved:
                self.steps += 1
        clip_after_step(self, shared, self.max_norm, loss_scale, weights_before)

    def _backward_with_last_alpha(
        self, losses: Tensor | Sequence[Tensor], shared: list[nn.Parameter], loss_scale: float | Tensor
    ) -> bool:
        """One backward of ``Σ α_k·s_k·L_k``; False (nothing done) when a non-shared leaf serves several tasks, or
        in a distributed job (where the full step's synchronised path is used)."""
        if self.sync_across_ranks and is_distributed():
            return False
        stacked = losses if isinstance(losses, Tensor) else torch.stack(list(losses))
        self.check_step_losses(stacked)
        shared_ids = {id(p) for p in shared}
        heads = [
            [leaf for leaf in task_leaves(root, stop_at=[]) if id(leaf) not in shared_ids]
            for root in task_roots(losses)
        ]
        owners: dict[int, int] = {}
        for k, leaves in enumerate(heads):
            for leaf in leaves:
                if owners.setdefault(id(leaf), k) != k:
                    return False
        scales = self.task_scales(stacked, self._weighting_scales(stacked, loss_scale))
        alpha = self.alpha.to(stacked.dtype)
        weights = alpha * scales
        head_leaves = [leaf for leaves in heads for leaf in leaves]
        total = (weights.detach() * stacked).sum()
        grads = torch.autograd.grad(
            total if is_unscaled(loss_scale) else total * loss_scale, [*shared, *head_leaves], allow_unused=True
        )
        for p, g in zip(shared, grads[: len(shared)], strict=True):
            p.grad = g
        position = len(shared)
        for k, leaves in enumerate(heads):
            for leaf in leaves:
                g = grads[position]
                position += 1
                leaf.grad = None if g is None else g / alpha[k]
        self.last_weights = weights.detach()
        return True

    def diagnostics(self) -> dict[str, float]:
        """``solve_failures`` under ``on_solve_failure="keep_previous"`` (the steps that reused an earlier α)."""
        if self.on_solve_failure != "keep_previous":
            return {}
        return {"solve_failures": float(self.solve_failures)}

    def get_extra_state(self) -> Any:
        return {"steps": self.steps, "solve_failures": self.solve_failures}

    def set_extra_state(self, state: Any) -> None:
        self.steps = int(state["steps"])
        self.solve_failures = int(state.get("solve_failures", 0))  # absent in checkpoints of earlier versions

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, update_weights_every={self.update_weights_every}, "
            f"max_norm={self.max_norm}, on_solve_failure={self.on_solve_failure!r}"
        )
