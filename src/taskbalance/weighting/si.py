"""SI: the scale-invariant loss Σ_k log L_k, a baseline of the Nash-MTL and FAMO tables."""

from __future__ import annotations

import torch
from torch import Tensor

from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


@WEIGHTINGS.register("si")
class SI(LossWeighting):
    """Scale-invariant loss: ``total = Σ_k log L_k``.

    The "SI" baseline of Navon et al. 2022 ("Multi-Task Learning as a Bargaining Game", ICML; Nash-MTL) and Liu et al.
    2023 ("FAMO: Fast Adaptive Multitask Optimization", NeurIPS): multiplying a task's loss by a positive constant
    only shifts the total by a constant, so the update does not depend on the units of the losses. Its gradient is
    ``Σ_k ∇L_k / L_k`` — exactly the gradient of UW-O (``Σ_k L_k / sg[L_k]``, :class:`~taskbalance.weighting.UWO`);
    the two differ only in the value of the total (``Σ_k log L_k`` here, always K for UW-O). It is registered under
    its own name so that tables quoting "SI" can be reproduced by that name. ``last_weights`` is the effective weight
    ``1/L_k`` of each ``∇L_k``. Every loss must be finite and > 0. ``sync_across_ranks`` has no effect: the
    gradient uses this rank's own losses.

    Example:
        >>> import torch
        >>> method = SI(2)
        >>> method(torch.tensor([0.5, 4.0]))  # log 0.5 + log 4 = log 2
        tensor(0.6931)
        >>> method.last_weights
        tensor([2.0000, 0.2500])
    """

    formula = "Σ_k log L_k"
    paper = "Navon et al., ICML 2022 (Nash-MTL, baseline SI)"
    requires_positive_losses = True

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        return torch.log(losses).sum(), values.reciprocal()
