"""FAMO: fast adaptive multitask optimisation, a loss weighting that balances the tasks' log-loss decrease."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.method import StepPasses
from taskbalance.validation import real_number
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("famo")
class FAMO(LossWeighting):
    """FAMO: ``total = Σ_k (z_k / c)·log L_k``, ``z = softmax(ξ)``, ``c = Σ_k z_k / L_k`` (``c`` constant).

    Liu et al. 2023, "FAMO: Fast Adaptive Multitask Optimization" (NeurIPS), Algorithm 1. The logits ξ move with
    the tasks' log-loss decrease over a step, ``δ_k = log L_k(θ_t) − log L_k(θ_{t+1})``:
    ``ξ ← Adam step on J_softmax(ξ)ᵀδ + γξ`` (lr 0.025, the authors'; γ = 1e-3, LibMTL's default and the authors'
    QM9 script's — their code's default is 0.01 (``experiments/utils.py``), and their run scripts set 0.001 or 0.01
    by dataset: pass ``weight_decay=0.01`` for theirs). No gradient clipping: the authors' ``WeightMethod.backward``
    (``methods/weight_methods.py``, commit 5b92c20) calls ``clip_grad_norm_(max_norm=1)`` *before*
    ``loss.backward()``, on the gradients the step has just zeroed, so it clips nothing.

    ``same_batch=True`` (default, the paper): δ compares the batch's losses before the step with the *same* batch's
    losses after it, which the caller passes to :meth:`update` after ``optimizer.step()`` (the training loop does
    this through :meth:`after_step`: one extra forward pass without gradient). Calling the method again without an
    :meth:`update` in between raises, so a loop that forgets it fails instead of never adapting.
    ``same_batch=False`` needs no extra forward: δ compares consecutive batches — a noisier estimate of the same
    decrease.

    Under fp16 loss scaling a step the ``GradScaler`` skipped (an overflow) leaves ξ and its Adam state unchanged
    (the loop passes ``applied`` to :meth:`after_step`); with ``same_batch=False`` the next δ then compares two
    batches at the same parameters, a decrease of about zero.

    ξ and its Adam state are buffers (saved in ``state_dict``), not parameters: the model's optimizer must not touch
    them. A loss weighting (one backward, O(1) in K), so it lives here with the gradient methods only as their cheap
    counterpart. ``last_weights`` is ``∂total/∂L_k = z_k / (c·L_k)``. Losses must be > 0.

    Example:
        >>> import torch
        >>> method = FAMO(2)
        >>> method(torch.tensor([1.0, 4.0])).shape, method.last_weights
        (torch.Size([]), tensor([0.8000, 0.2000]))
        >>> method.update(torch.tensor([0.5, 4.0]))  # after optimizer.step(): the same batch's new losses
        >>> method.logits  # task 1 decreased less, so its logit rose
        tensor([-0.0250,  0.0250])
    """

    formula = "Σ_k softmax(ξ)_k·log L_k / Σ_j (softmax(ξ)_j/L_j); ξ ← Adam(J_softmaxᵀ Δlog L + γξ)"
    paper = "Liu et al., NeurIPS 2023"
    hyperparameters: ClassVar[dict[str, str]] = {
        "lr": "Adam step size of the logits ξ (default 0.025)",
        "weight_decay": "γ, L2 pull of ξ towards 0 (default 1e-3, LibMTL's; the authors' code defaults to 0.01)",
        "same_batch": "δ from the same batch after the step (True, the paper) or from consecutive batches (False)",
    }
    requires_positive_losses = True

    logits: Tensor
    previous_log_losses: Tensor
    moment: Tensor
    second_moment: Tensor
    updates: Tensor

    def __init__(
        self, num_tasks: int, *, lr: float = 0.025, weight_decay: float = 1e-3, same_batch: bool = True, **common: Any
    ) -> None:
        super().__init__(num_tasks, **common)
        if not real_number("FAMO", "lr", lr) > 0:
            raise ValueError(f"FAMO: lr must be > 0, got {lr!r}")
        self.lr = float(lr)
        self.weight_decay = real_number("FAMO", "weight_decay", weight_decay)
        self.same_batch = bool(same_batch)
        self._awaiting_update = False
        self.register_buffer("logits", torch.zeros(num_tasks))
        self.register_buffer("previous_log_losses", torch.full((num_tasks,), torch.nan))
        self.register_buffer("moment", torch.zeros(num_tasks))
        self.register_buffer("second_moment", torch.zeros(num_tasks))
        self.register_buffer("updates", torch.zeros(()))

    @property
    def needs_losses_after_step(self) -> bool:
        return self.same_batch

    @classmethod
    def step_passes(cls, num_tasks: int, options: Mapping[str, Any]) -> StepPasses:
        """A second forward pass (without gradient) measures the same batch after the step, unless
        ``same_batch=False``."""
        return StepPasses(forward=2 if options.get("same_batch", True) else 1)

    def after_step(self, losses: Tensor, *, applied: bool | Tensor = True) -> None:
        self.update(losses, applied=applied)

    @torch.no_grad()
    def update(self, losses: Tensor, *, applied: bool | Tensor = True) -> None:
        """Move ξ with the decrease from the last call's losses to ``losses``, the same batch after the step.

        Only with ``same_batch=True``; call it after ``optimizer.step()`` with the batch's new task losses.
        ``applied=False`` (or a false 0-dim tensor) says the optimizer skipped the step (an fp16 overflow): there was
        no decrease to learn from, so ξ, its Adam moments and its step count stay as they were.
        """
        if not self.same_batch:
            raise RuntimeError("FAMO(same_batch=False) compares consecutive batches; update() is not used")
        if not self._awaiting_update:
            raise RuntimeError("FAMO.update() must follow a call of the method (the step whose effect it measures)")
        self.check_losses(losses, positive=True, what="losses after the step")
        values = losses.detach().to(self.logits.dtype)
        if self.sync_across_ranks:
            values = self.shared_values(values)
        active = applied.to(self.logits.dtype) if isinstance(applied, Tensor) else float(bool(applied))
        self._adam_step(self.previous_log_losses - values.log(), active)
        self._awaiting_update = False

    @torch.no_grad()
    def _adam_step(self, decrease: Tensor, active: Tensor | float = 1.0) -> None:
        z = torch.softmax(self.logits, dim=0)
        gradient = z * (decrease - (z * decrease).sum()) + self.weight_decay * self.logits
        beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the authors use
        self.updates.add_(active)
        self.moment.lerp_(gradient, (1 - beta1) * active)
        self.second_moment.lerp_(gradient.square(), (1 - beta2) * active)
        steps = self.updates.clamp_min(1.0)
        corrected = self.moment / (1 - beta1**steps)
        corrected_second = self.second_moment / (1 - beta2**steps)
        self.logits.sub_(active * self.lr * corrected / (corrected_second.sqrt() + eps))

    @torch.no_grad()
    def _update_from_previous_batch(self, log_values: Tensor) -> None:
        has_previous = (~torch.isnan(self.previous_log_losses)).all().to(self.logits.dtype)
        self._adam_step(torch.nan_to_num(self.previous_log_losses - log_values, nan=0.0), has_previous)
        self.previous_log_losses.copy_(log_values)

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        log_values = values.log()
        if self.same_batch:
            if self._awaiting_update:
                raise RuntimeError(
                    "FAMO(same_batch=True): call method.after_step(new_losses) (or update) after optimizer.step() "
                    "with the same batch's losses before the next step (or use same_batch=False)"
                )
            self.previous_log_losses.copy_(log_values.to(self.logits.dtype))
            self._awaiting_update = True
        else:
            self._update_from_previous_batch(log_values.to(self.logits.dtype))
        z = torch.softmax(self.logits, dim=0).to(values.dtype)
        normaliser = (z / values).sum()
        return (z / normaliser * losses.log()).sum(), z / (normaliser * values)

    def get_extra_state(self) -> dict[str, Any]:
        return {"awaiting_update": self._awaiting_update}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._awaiting_update = bool(state["awaiting_update"])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lr={self.lr}, weight_decay={self.weight_decay}, same_batch={self.same_batch}"
