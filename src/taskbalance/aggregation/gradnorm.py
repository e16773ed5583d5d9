"""GradNorm: learnable task weights trained so that the weighted gradient norms follow the relative losses."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from taskbalance.aggregation.base import GramAggregation
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_task_gradients
from taskbalance.method import is_unscaled

WEIGHT_FORMS = ("renormalised", "softmax")


@AGGREGATIONS.register("gradnorm")
class GradNorm(GramAggregation):
    """GradNorm: direction ``Σ_k w_k g_k``; the weights ``w`` minimise ``Σ_k |w_k|g_k| − mean_j(w_j|g_j|)·r_k^α|``.

    Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep Multitask Networks"
    (ICML), Eq. 1–2: ``r_k = L̃_k / mean_j L̃_j``, ``L̃_k = L_k(t)/L_k(0)``, the target ``mean·r^α`` treated as a
    constant, ``α = 1.5`` (the paper uses 0.12–3 depending on the problem).

    Interface: the weights are the parameter ``task_weights`` (init 1) and are trained by the *same optimizer* as
    the model — the training loop passes ``method.parameters()`` to it. Each :meth:`step` (1) renormalises
    ``w`` to sum to K (the paper does this after every update), (2) sets ``task_weights.grad`` to the gradient of the
    GradNorm objective, (3) uses ``w`` to combine the task gradients; ``optimizer.step()`` then updates the model
    and ``w`` together. ``L(0)`` is recorded at the first call (a buffer, saved in ``state_dict``).

    The training rates divide by ``L(0)``, so every first loss must be > 0: with ``validate`` a first loss ≤ 0
    raises a ``ValueError`` naming the task (later losses may reach 0: that task's rate is then 0). When every
    ``L̃_k`` is 0 the relative rates are undefined and set to 1 (no pull towards any task).

    ``weights="renormalised"`` (default) is the paper's: nothing keeps a weight positive. A task that learns much
    faster than the others has a target ``mean·r_k^α`` near 0, and since the objective's gradient in ``w_k`` is
    ``±|g_k|``, an Adam step moves ``w_k`` by about the learning rate: after roughly 1/lr steps it crosses 0, and a
    negative weight trains that task's loss upward. So with ``validate`` a renormalised weight ≤ 0 (or weights
    summing to ≤ 0) raises a ``ValueError`` naming the task, before the weights change. ``weights="softmax"`` is
    LibMTL's parametrisation instead: the parameter ``weight_logits`` θ (init 0) gives ``w = K·softmax(θ)``, positive
    and summing to K by construction, and the objective's gradient flows to θ.

    The paper measures ``|g_k|`` at the last shared layer to save compute; here it is the gradient of whatever the
    mode gives: all shared parameters, or (cheaper) the shared representation with ``mode="representation"``.
    ``last_weights`` is ``w`` (times a weighting's scales).

    Example:
        >>> import torch
        >>> GradNorm(2).task_weights.data
        tensor([1., 1.])
        >>> GradNorm(2, weights="softmax").current_weights()  # K·softmax(0)
        tensor([1., 1.])
    """

    formula = "d = Σ w_k g_k; w ← argmin Σ_k |w_k|g_k| − mean(w|g|)·r_k^α|, Σ w = K"
    learns_parameters: ClassVar[bool] = True
    paper = "Chen et al., ICML 2018"
    hyperparameters: ClassVar[dict[str, str]] = {
        "alpha": "strength α of the pull towards the relative training rates (default 1.5)",
        "weights": "'renormalised' (the paper's, default) or 'softmax' (w = K·softmax(θ), always positive; LibMTL)",
    }

    initial_losses: Tensor

    def __init__(self, num_tasks: int, *, alpha: float = 1.5, weights: str = "renormalised", **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if not alpha >= 0:
            raise ValueError(f"GradNorm: alpha must be >= 0, got {alpha!r}")
        if weights not in WEIGHT_FORMS:
            raise ValueError(f"GradNorm: weights must be one of {', '.join(map(repr, WEIGHT_FORMS))}, got {weights!r}")
        self.alpha = float(alpha)
        self.weights = weights
        if weights == "softmax":
            self.weight_logits = nn.Parameter(torch.zeros(num_tasks))
        else:
            self.task_weights = nn.Parameter(torch.ones(num_tasks))
        self.register_buffer("initial_losses", torch.full((num_tasks,), torch.nan))
        self.register_buffer("relative_rates", torch.ones(num_tasks), persistent=False)

    def _differentiable_weights(self) -> Tensor:
        if self.weights == "softmax":
            return self.num_tasks * torch.softmax(self.weight_logits, dim=0)
        return self.task_weights

    def _weight_parameter(self) -> nn.Parameter:
        return self.weight_logits if self.weights == "softmax" else self.task_weights

    def current_weights(self) -> Tensor:
        """The task weights w the next step combines the gradients with (detached)."""
        return self._differentiable_weights().detach()

    def task_scales(self, losses: Tensor, weighting_scales: Tensor) -> Tensor:
        values = losses.detach().to(self.initial_losses.dtype)
        with torch.no_grad():
            if self.weights == "renormalised":
                normalised = self.task_weights * (self.num_tasks / self.task_weights.sum())
                if self.validate:
                    self._check_weights(normalised)
                self.task_weights.copy_(normalised)
            self.initial_losses.copy_(torch.where(torch.isnan(self.initial_losses), values, self.initial_losses))
            ratios = values / self.initial_losses
            mean = ratios.mean()
            self.relative_rates = torch.where(mean > 0, ratios / mean.clamp_min(torch.finfo(mean.dtype).tiny), 1.0)
        return weighting_scales * self.current_weights().to(weighting_scales.dtype)

    def _check_weights(self, normalised: Tensor) -> None:
        """Raise unless every renormalised weight is finite and > 0 (one host read); the weights stay as they were."""
        valid = torch.isfinite(normalised) & (normalised > 0)
        if bool(valid.all()):
            return
        values = self.task_weights.tolist()
        weights = "[" + ", ".join(f"{w:.3g}" for w in values) + "]"
        total = sum(values)
        if not total > 0:
            problem = (f"the weights {weights} sum to {total:.3g}, so they cannot be renormalised to sum "
                       f"{self.num_tasks}")
        else:
            index = int((~valid).nonzero()[0])
            problem = (f"the weight of {self.task_label(index)} is {float(normalised[index]):.3g} after renormalising "
                       f"the weights {weights} to sum {self.num_tasks}")
        raise ValueError(
            f"GradNorm: {problem}. A weight ≤ 0 would train its task's loss upward; the paper's weights have no floor, "
            "and a task that learns much faster than the others is pulled towards a weight near 0 until an optimizer "
            "step crosses it. weights=\"softmax\" keeps every weight positive (LibMTL's form); a smaller alpha "
            "weakens the pull"
        )

    def check_step_losses(self, losses: Tensor) -> None:
        """The base checks, and (with ``validate``) that the first losses, the ``L(0)`` of the rates, are > 0."""
        super().check_step_losses(losses)
        if not self.validate:
            return
        first = torch.isnan(self.initial_losses).to(losses.device)
        values = losses.detach()
        if bool((first & (values <= 0)).any()):
            index = int((first & (values <= 0)).nonzero()[0])
            raise ValueError(
                f"GradNorm: the first loss of {self.task_label(index)} is {float(values[index])}; GradNorm's "
                "training rates L_k(t)/L_k(0) need every first loss to be > 0"
            )

    def coefficients(self, gram: Tensor) -> Tensor:
        check_task_gradients(self, torch.diagonal(gram))
        # gram is of the scaled gradients s_k·g_k with s_k = weighting_k·w_k, so |g_k| (times weighting) = √G_kk / w_k.
        parameter = self._weight_parameter()
        detached = self.current_weights()
        scaled_norms = torch.diagonal(gram).clamp_min(0.0).sqrt().detach().to(detached.dtype)
        unit_norms = torch.where(detached != 0, scaled_norms / detached, torch.zeros_like(scaled_norms))
        with torch.enable_grad():
            norms = self._differentiable_weights() * unit_norms
            target = norms.mean().detach() * self.relative_rates.pow(self.alpha)
            objective = (norms - target).abs().sum()
            (gradient,) = torch.autograd.grad(objective, [parameter])
        scale = self._own_gradient_scale
        parameter.grad = gradient if is_unscaled(scale) else gradient * scale
        return torch.ones_like(torch.diagonal(gram))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}, weights={self.weights!r}"
