"""STCH: smooth Tchebycheff scalarisation of the (log) task losses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.validation import real_number, real_numbers
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("stch")
class STCH(LossWeighting):
    """STCH: ``total = μ·log Σ_k exp(λ_k·u_k / μ)``, ``u_k = log(L_k / z_k)`` (``L_k / z_k`` with ``log_losses=False``).

    Lin et al. 2024, "Smooth Tchebycheff Scalarization for Multi-Objective Optimization" (ICML), Eq. 8; μ → 0
    recovers the Tchebycheff max, μ → ∞ the λ-weighted mean. Preferences λ default to 1.

    ``z`` is the nadir point of the authors' MTL code: the mean training losses of the last of ``warmup_epochs``
    warm-up epochs, during which the total is the plain ``Σ_k u_k`` (with logs, ``Σ_k log L_k``). Dividing by ``z``
    is not a no-op even with logs: it shifts each task's score by its own ``λ_k·log z_k / μ`` and so changes the
    softmax weights. With the nadir from a warm-up and logs (the authors' MTL setting) the method is invariant to the
    loss scales: a task's loss scaled by c has its nadir scaled by c, so ``u_k`` does not change.

    The default ``warmup_epochs = 5`` is the authors' (``STCH_warmup_epoch = 4`` in their code counts epochs from
    0: four epochs of ``Σ_k log L_k``, then a fifth of the same whose mean losses are the nadir). A run of at most 5
    epochs never leaves the warm-up: STCH is then SI (``Σ_k log L_k``) throughout. ``warmup_epochs = 0`` keeps
    ``z = 1``; with μ = 1 and logs that is ``log Σ_k L_k``, whose weights ``1/Σ_j L_j`` are equal for every task —
    no balancing at all. The training loop drives the warm-up through :meth:`end_epoch`; ``z`` and the epoch count
    are buffers, saved in ``state_dict``. The authors' code also multiplies the total by K (a constant, absorbed by
    the learning rate); left out.

    A loss weighting (one backward): ``last_weights`` is ``∂total/∂L_k`` — ``softmax(λu/μ)_k·λ_k·(1/L_k if log)``
    after the warm-up, ``1/L_k`` (or 1) during it. Computed stably with ``logsumexp``.

    Args:
        num_tasks: K.
        mu: smoothing μ > 0.
        preference: λ, K positive numbers.
        log_losses: scalarise ``log(L_k/z_k)`` instead of ``L_k/z_k``.
        warmup_epochs: epochs of ``Σ_k u_k`` before the smooth Tchebycheff total; the last one sets ``z``.

    Example:
        >>> import torch
        >>> method = STCH(2, mu=1.0, warmup_epochs=0)  # z = 1
        >>> method(torch.tensor([1.0, 1.0]))
        tensor(0.6931)
        >>> warm = STCH(2, warmup_epochs=1)
        >>> warm(torch.tensor([2.0, 0.5]))  # warm-up: log 2 + log 0.5
        tensor(0.)
        >>> warm.end_epoch(torch.tensor([2.0, 0.5]))  # nadir z = (2, 0.5)
        >>> warm(torch.tensor([2.0, 0.5]))  # u = (0, 0): log(e⁰ + e⁰)
        tensor(0.6931)
    """

    formula = "μ·log Σ_k exp(λ_k·log(L_k/z_k) / μ), z = nadir from warm-up"
    paper = "Lin et al., ICML 2024"
    hyperparameters: ClassVar[dict[str, str]] = {
        "mu": "smoothing μ > 0 (default 1.0)",
        "preference": "λ, K positive numbers (default all 1)",
        "log_losses": "scalarise log(L_k/z_k) instead of L_k/z_k (default True)",
        "warmup_epochs": "epochs of Σ_k u_k whose last one sets the nadir z (default 5, the authors'; 0: z = 1)",
    }

    # 1: the default warm-up became the authors' 5 epochs (it was 0, which made STCH equal weighting over Σ_j L_j).
    revision = 1
    requires_positive_losses = True  # with the default log_losses=True; set per instance from log_losses

    preference: Tensor
    nadir: Tensor
    epochs_seen: Tensor

    def __init__(
        self,
        num_tasks: int,
        *,
        mu: float = 1.0,
        preference: Sequence[float] | None = None,
        log_losses: bool = True,
        warmup_epochs: int = 5,
        **common: Any,
    ) -> None:
        super().__init__(num_tasks, **common)
        if not (math.isfinite(real_number("STCH", "mu", mu)) and mu > 0):
            raise ValueError(f"STCH: mu must be finite and > 0, got {mu!r}")
        values = [1.0] * num_tasks if preference is None else real_numbers("STCH", "preference", preference)
        if len(values) != num_tasks or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"STCH: preference must be {num_tasks} finite numbers > 0, got {preference!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"STCH: warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        self.mu = float(mu)
        self.warmup_epochs = warmup_epochs
        self.log_losses = log_losses
        self.requires_positive_losses = log_losses
        self.register_buffer("preference", torch.tensor(values))
        self.register_buffer("nadir", torch.ones(num_tasks))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        # A Python mirror of the buffer (updated by end_epoch and load_state_dict): no host sync per step.
        self._warming_up = warmup_epochs > 0

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        nadir = self.nadir.to(values.dtype)
        normalised = losses / nadir
        utilities = normalised.log() if self.log_losses else normalised
        if self._warming_up:
            total, share = utilities.sum(), torch.ones_like(values)
        else:
            preference = self.preference.to(values.dtype)
            scores = preference * utilities / self.mu
            total = self.mu * torch.logsumexp(scores, dim=0)
            share = torch.softmax(scores.detach(), dim=0) * preference
        # ∂total/∂L_k = ∂total/∂u_k · ∂u_k/∂L_k, the latter 1/L_k with logs, else 1/z_k.
        return total, share * (values.reciprocal() if self.log_losses else nadir.reciprocal())

    def end_epoch(self, mean_losses: Tensor) -> None:
        """Count a training epoch; the last warm-up epoch's mean losses become the nadir point ``z``."""
        if not self._warming_up:
            return
        self.check_shape(mean_losses, what="epoch-mean losses")
        self.check_values(mean_losses.detach(), positive=True, what="the epoch-mean loss")
        self.epochs_seen += 1
        if int(self.epochs_seen) >= self.warmup_epochs:
            means = mean_losses.detach().to(self.nadir)
            self.nadir = self.shared_values(means) if self.sync_across_ranks else means
            self._warming_up = False

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._warming_up = int(self.epochs_seen) < self.warmup_epochs

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, mu={self.mu}, log_losses={self.log_losses}, warmup_epochs={self.warmup_epochs}"
        )
