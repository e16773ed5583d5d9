"""Dynamic weight average (DWA) of Liu, Johns & Davison (2019)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.validation import real_number
from taskbalance.weighting.base import LossWeighting, positive_temperature
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("dwa")
class DWA(LossWeighting):
    """DWA: ``ω = K·softmax_k(r_k / T)`` with ``r_k = L̄_k(t−1) / L̄_k(t−2)``, fixed within an epoch.

    Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019 (MTAN), eq. 7, with T = 2.
    ``L̄_k(t)`` is task k's mean training loss over epoch t. ``total = Σ_k ω_k·L_k``; ``last_weights`` is ω.

    Cadence: call ``end_epoch(mean_losses)`` once after every training epoch with that epoch's mean training losses
    (shape ``[K]``, finite and > 0). Epochs 1 and 2 use ω = 1; after the second call (i.e. for epoch 3) and every
    later one, ω is recomputed from the last two epoch means. The two most recent epoch means, the number of epochs
    seen and the current ω are buffers, so they are saved in ``state_dict``. ``forward`` only checks that losses are
    finite (it does not invert them); ``end_epoch`` checks > 0 because it divides by ``L̄(t−2)``. With
    ``sync_across_ranks`` the epoch means are averaged over ranks.

    Args:
        num_tasks: K.
        temperature: T > 0 (default 2.0, the paper's value).

    Example:
        >>> import torch
        >>> dwa = DWA(2)
        >>> dwa.end_epoch(torch.tensor([1.0, 1.0])); dwa.end_epoch(torch.tensor([0.5, 1.0]))
        >>> dwa.last_weights  # 2·softmax([0.5, 1.0] / 2)
        tensor([0.8756, 1.1244])
    """

    formula = "K·softmax_k(r_k/T)·L_k, r_k = L̄_k(t−1)/L̄_k(t−2); ω = 1 for epochs 1–2"
    positive_losses_reason: ClassVar[str] = "divides by each task's epoch-mean loss"
    paper = "Liu, Johns & Davison, CVPR 2019 (MTAN)"
    hyperparameters: ClassVar[dict[str, str]] = {"temperature": "softmax temperature T > 0 (default 2.0)"}

    previous_means: Tensor
    epochs_seen: Tensor
    current_weights: Tensor

    def __init__(self, num_tasks: int, temperature: float = 2.0, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        self.temperature = positive_temperature("DWA", real_number("DWA", "temperature", temperature))
        # Row 0 = L̄(t−2), row 1 = L̄(t−1).
        self.register_buffer("previous_means", torch.ones(2, num_tasks))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("current_weights", torch.ones(num_tasks))

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.current_weights
        return (weights * losses).sum(), weights

    def end_epoch(self, mean_losses: Tensor) -> None:
        """Record the epoch-mean training losses and set the weights of the next epoch."""
        # Always validated: once per epoch costs nothing, and a zero mean would otherwise divide by zero later.
        self.check_shape(mean_losses, what="epoch-mean losses")
        self.check_values(mean_losses.detach(), positive=True, what="the epoch-mean loss")
        means = mean_losses.detach().to(self.previous_means)
        if self.sync_across_ranks:
            means = self.shared_values(means)
        self.previous_means[0] = self.previous_means[1]
        self.previous_means[1] = means
        self.epochs_seen += 1
        if int(self.epochs_seen) >= 2:
            ratios = self.previous_means[1] / self.previous_means[0]
            self.current_weights = self.num_tasks * torch.softmax(ratios / self.temperature, dim=0)
        self.last_weights = self.current_weights.clone()

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, temperature={self.temperature}"
