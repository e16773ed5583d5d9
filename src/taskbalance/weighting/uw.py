"""Uncertainty weighting (UW) of Kendall et al. (2018): learnable log-variances per task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskbalance.validation import real_number
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS

KINDS = ("regression", "classification")
# c_k: Kendall's ½ on the loss of a Gaussian likelihood, 1 for a softmax likelihood.
LOSS_FACTORS = {"regression": 0.5, "classification": 1.0}


@WEIGHTINGS.register("uw")
class UW(LossWeighting):
    """Homoscedastic uncertainty weighting with one learnable log-variance ``s_k = log σ_k²`` per task.

    Per task, by likelihood form (Kendall, Gal & Cipolla 2018, CVPR, eqs. 7 and 10):

    - regression (Gaussian likelihood): ``½·e^(−s_k)·L_k + ½·s_k``; minimising over ``s_k`` gives ``e^(s_k) = L_k``;
    - classification (scaled softmax): ``e^(−s_k)·L_k + ½·s_k`` — the loss term has no ½, the regulariser keeps
      Kendall's ½·log σ²; minimising over ``s_k`` gives ``e^(s_k) = 2·L_k``.

    ``total`` is the sum over tasks. ``last_weights`` is ``c_k·e^(−s_k)`` with ``c_k = ½`` (regression) or
    ``1`` (classification): the factor each loss is multiplied by (the ``½·s_k`` term is not a weight).
    The log-variances are the ``nn.Parameter`` ``log_variances``: hand ``method.parameters()`` to the optimizer
    (without weight decay) and they are saved in ``state_dict``. Every loss must be ≥ 0: for ``L_k < 0`` the
    objective has no minimum over ``s_k``, which would grow without bound (weights of 1e20 after a few thousand
    steps), so such a loss raises a ``ValueError`` naming the task. A loss of exactly 0 (a segmentation batch whose
    every pixel is ignored) is accepted.

    The benchmark builds UW with each task's likelihood form (``Task.likelihood``: classification for
    cross-entropy tasks) and ``init = 0``. LibMTL's UW, which Kirchdorfer et al. 2024 compare against, uses the
    regression form for every task and starts from −0.5: ``kinds=["regression"] * K, init=-0.5``. Both reach the
    same weights ``1/(2·L_k)``; they start from different ones (here 1 for a classification task and ½ for a
    regression task, there ½·e^0.5 ≈ 0.82 for every task).

    Args:
        num_tasks: K.
        init: initial ``s_k`` for every task (default 0.0, i.e. σ² = 1; LibMTL and MTAN's code start from −0.5).
        kinds: per task ``"regression"`` or ``"classification"``; default all ``"regression"`` (the form most
            implementations use for every task).

    Example:
        >>> import torch
        >>> uw = UW(2, kinds=["classification", "regression"])
        >>> uw(torch.tensor([1.0, 2.0]))  # e^0·1 + ½·e^0·2 + ½·(0 + 0)
        tensor(2., grad_fn=<AddBackward0>)
    """

    formula = "Σ_k c_k·e^(−s_k)·L_k + ½·s_k, c_k = ½ (regression) or 1 (classification), s learnable"
    learns_parameters: ClassVar[bool] = True
    paper = "Kendall, Gal & Cipolla, CVPR 2018"
    hyperparameters: ClassVar[dict[str, str]] = {
        "init": "initial log-variance s_k (default 0.0; LibMTL/MTAN use −0.5)",
        "kinds": "per task 'regression' or 'classification' (default all regression)",
    }

    uses_task_likelihoods = True
    # c·e^(−s)·L + ½s has its minimum at e^s = 2c·L for L > 0; for L < 0 s grows without bound (a weight of 1e20).
    # A loss of 0 (a batch with nothing to learn for the task) only moves s by one step.
    requires_nonnegative_losses = True
    positive_losses_reason: ClassVar[str] = (
        "learns each task's weight from its loss (c·e^(−s)·L + ½s has no minimum over s for L < 0)"
    )

    log_variances: nn.Parameter
    loss_factors: Tensor

    def __init__(self, num_tasks: int, init: float = 0.0, kinds: Sequence[str] | None = None, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if not math.isfinite(real_number("UW", "init", init)):
            raise ValueError(f"UW: init must be a finite log-variance, got {init}")
        if isinstance(kinds, str):
            raise ValueError(f"UW: kinds must be a list of {num_tasks} of {KINDS}, got the string {kinds!r}")
        kinds = list(kinds) if kinds is not None else ["regression"] * num_tasks
        if len(kinds) != num_tasks:
            raise ValueError(f"UW: got {len(kinds)} kinds {kinds} for {num_tasks} tasks")
        for index, kind in enumerate(kinds):
            if kind not in KINDS:
                raise ValueError(f"UW: kind of {self.task_label(index)} is {kind!r}; expected one of {KINDS}")
        self.kinds = kinds
        self.log_variances = nn.Parameter(torch.full((num_tasks,), float(init)))
        self.register_buffer("loss_factors", torch.tensor([LOSS_FACTORS[kind] for kind in kinds]))
        self.last_weights = self.current_weights()

    def current_weights(self) -> Tensor:
        """``c_k·e^(−s_k)``, detached."""
        return (self.loss_factors * torch.exp(-self.log_variances)).detach()

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.loss_factors * torch.exp(-self.log_variances)
        total = (weights * losses).sum() + 0.5 * self.log_variances.sum()
        return total, weights

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # The factors are saved (they follow .to(device)) but are set by kinds: a state of other kinds would
        # silently change the likelihood forms while kinds still showed the old ones.
        saved = state_dict.get(prefix + "loss_factors")
        same_size = saved is not None and saved.shape == self.loss_factors.shape  # (else: torch's size error)
        if same_size and not torch.equal(saved.to(self.loss_factors), self.loss_factors):
            kind_of = {factor: kind for kind, factor in LOSS_FACTORS.items()}
            forms = [kind_of.get(factor, f"factor {factor}") for factor in saved.tolist()]
            raise ValueError(f"UW: the state is of a UW with kinds {forms}, this one has kinds {self.kinds}")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, kinds={self.kinds}"
