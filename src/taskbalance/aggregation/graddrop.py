"""GradDrop: per feature, keep only the task gradients of one randomly chosen sign."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.aggregation.base import GradientAggregation, Mode
from taskbalance.aggregation.registry import AGGREGATIONS
from taskbalance.aggregation.solvers import check_piece_gradients
from taskbalance.distributed import all_reduce_sum
from taskbalance.method import RandomState


@AGGREGATIONS.register("graddrop")
class GradDrop(RandomState, GradientAggregation):
    """GradDrop: ``G_k = Σ_b sign(A_b)·g_k,b``, ``P = ½(1 + Σ_k G_k / Σ_k |G_k|)`` and ``U ~ Uniform(0, 1)`` per
    feature, ``M_k = [P > U]·[G_k > 0] + [P < U]·[G_k < 0]``, ``d_b = Σ_k (ℓ + (1 − ℓ)·M_k)·g_k,b``.

    Chen et al. 2020, "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout" (NeurIPS),
    Eq. 1–2 (ℓ = leak, 0 in the paper's main results). The paper applies it at the shared
    activations A, so ``mode="representation"`` is the default. There ``g_k,b`` is task k's gradient w.r.t. sample
    b's representation; the sign purity is computed per feature (every index but the batch dimension, dim 0 of the
    representation) from the gradients weighted by the sign of the activations and summed over the batch, ``G_k``,
    as in the authors' code (lingvo's ``GradDrop`` layer with its defaults ``use_input_sign_only=True`` and
    ``marginalize_batch_dim=True``; LibMTL does the same). One ``U`` is drawn per feature and the mask ``M_k`` of a
    (task, feature) applies to every sample: ``d`` masks the raw per-sample gradients ``g_k,b`` (not multiplied by
    ``sign(A)``). A task whose ``G_k`` is exactly 0 at a feature keeps only the leak there (the paper's mask; lingvo's
    layer keeps the whole gradient). lingvo's optional output rescaling (``keep_gradnorm_constant``) is not applied,
    as in LibMTL. Features where all tasks agree in sign keep every gradient. The batch sums are one K×features
    reduction; with ``sync_across_ranks`` they are summed over the ranks, so every rank masks its samples as one
    process would on the global batch.

    ``marginalize_batch=False`` is the rule of this library before revision 1: P and the masks per element of the
    representation gradient (the batch dimension included, one ``U`` per element), without ``sign(A)``. In
    parameters mode (and when :meth:`aggregate` is called without ``inputs`` outside a step) there are no activations
    and no batch: ``P``, ``U`` and the masks are per coordinate of the gradients, as in the parameter-level GradDrop
    baseline of the FairGrad and SDMGrad authors' code.

    Works on the stacked per-task gradients (no Gram matrix); ``U`` comes from a ``torch.Generator`` seeded by
    ``seed`` (saved in ``state_dict``). ``last_weights`` is the task scales (GradDrop defines no per-task weights).
    With ``validate`` a non-finite task gradient raises a ``ValueError`` naming the task (one extra pass over the
    gradients and one host read of K numbers).

    Example:
        >>> import torch
        >>> GradDrop(2).aggregate([torch.tensor([[1.0, 2.0], [3.0, 4.0]])], torch.ones(2))[0]  # no conflict
        [tensor([4., 6.])]
        >>> activations = torch.tensor([[1.0], [-1.0]])  # a batch of 2 samples, 1 feature
        >>> gradients = torch.tensor([[[1.0], [-1.0]], [[2.0], [-3.0]]])  # [task, sample, feature]
        >>> GradDrop(2).aggregate([gradients], torch.ones(2), inputs=[activations])[0]  # G = (2, 5): all kept
        [tensor([[ 3.],
                [-4.]])]
    """

    formula = "G_k = Σ_batch sign(A)·g_k; P = ½(1 + ΣG/Σ|G|); d = Σ_k [sign(G_k) chosen w.p. P]·g_k"
    paper = "Chen et al., NeurIPS 2020"
    hyperparameters: ClassVar[dict[str, str]] = {
        "leak": "ℓ ∈ [0, 1]: share of each gradient kept regardless of sign (default 0)",
        "marginalize_batch": "P and the masks per feature from the sign(A)-weighted batch sums, the authors' rule "
        "(default True); False: per element of the representation gradient, without sign(A) (before revision 1)",
        "seed": "seed of the generator of U (default 0)",
    }
    default_mode: ClassVar[Mode] = "representation"
    # 1: the authors' per-feature rule on sign(A)-weighted batch sums (was per element, batch included).
    revision: ClassVar[int] = 1

    def __init__(
        self, num_tasks: int, *, leak: float = 0.0, marginalize_batch: bool = True, seed: int = 0, **common: Any
    ) -> None:
        super().__init__(num_tasks, **common)
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"GradDrop: leak must be in [0, 1], got {leak!r}")
        if not isinstance(marginalize_batch, bool):
            raise ValueError(f"GradDrop: marginalize_batch must be a bool, got {marginalize_batch!r}")
        self.leak = float(leak)
        self.marginalize_batch = marginalize_batch
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def aggregate(
        self, pieces: list[Tensor], scales: Tensor, inputs: Sequence[Tensor] | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """The GradDrop direction of each piece.

        Args:
            pieces: as :meth:`GradientAggregation.aggregate`; ``pieces[i]`` is ``[K, B, ...]`` for a representation.
            scales: ``[K]`` task scales.
            inputs: the values whose gradients the pieces are (the representation, ``[B, ...]`` each); by default
                those :meth:`step` passes in representation mode, none otherwise (then per coordinate).
        """
        check_piece_gradients(self, pieces, scales)
        activations = tuple(self._piece_inputs if inputs is None else inputs)
        if activations and len(activations) != len(pieces):
            raise ValueError(f"GradDrop: got {len(activations)} inputs for {len(pieces)} gradient pieces")
        directions = []
        for i, piece in enumerate(pieces):
            scaled = piece * scales.to(piece.dtype).view(-1, *([1] * (piece.dim() - 1)))
            if activations and self.marginalize_batch and piece.dim() >= 2:
                if activations[i].shape != piece.shape[1:]:
                    raise ValueError(
                        f"GradDrop: inputs[{i}] has shape {tuple(activations[i].shape)}, its gradients "
                        f"{tuple(piece.shape[1:])}"
                    )
                directions.append(self._per_feature(scaled, activations[i]))
            else:
                directions.append(self._per_coordinate(scaled))
        return directions, scales

    def _keep_positive(self, positive: Tensor, negative: Tensor) -> Tensor:
        # With S⁺ = Σ_k max(G_k, 0) and S⁻ = Σ_k min(G_k, 0): P = S⁺/(S⁺ − S⁻), and `U·(S⁺ − S⁻) < S⁺` is `U < P`
        # without a division, false where every G_k is 0 (all of them are then dropped either way).
        uniform = torch.rand(positive.shape, generator=self.generator, dtype=positive.dtype).to(positive.device)
        return uniform * (positive - negative) < positive

    def _per_coordinate(self, scaled: Tensor) -> Tensor:
        # Keeping the positive (negative) gradients sums to S⁺ (S⁻): four passes over the K gradients, not eight.
        positive = scaled.clamp_min(0).sum(dim=0)
        negative = scaled.clamp_max(0).sum(dim=0)
        chosen = torch.where(self._keep_positive(positive, negative), positive, negative)
        if self.leak > 0:
            chosen = self.leak * (positive + negative) + (1 - self.leak) * chosen
        return chosen

    def _per_feature(self, scaled: Tensor, activations: Tensor) -> Tensor:
        num_tasks, batch = scaled.shape[:2]
        flat = scaled.reshape(num_tasks, batch, -1)
        signs = torch.sign(activations.detach()).to(flat.dtype).reshape(batch, -1)
        # sign(A)·g > 0 means a descent step shrinks |A|: unlike the raw sign, comparable across samples whose
        # activations differ in sign, so the batch sum gives one decision per feature (lingvo's use_input_sign_only).
        sums = torch.einsum("kbf,bf->kf", flat, signs)
        if self._reduce_gram:
            sums = all_reduce_sum(sums)  # the global batch's G_k (times R > 0: P and signs unchanged)
        keep_positive = self._keep_positive(sums.clamp_min(0).sum(dim=0), sums.clamp_max(0).sum(dim=0))
        masks = torch.where(keep_positive, sums > 0, sums < 0).to(flat.dtype)
        if self.leak > 0:
            masks = self.leak + (1 - self.leak) * masks
        return torch.einsum("kbf,kf->bf", flat, masks).reshape(scaled.shape[1:])

    def extra_repr(self) -> str:
        batch = "" if self.marginalize_batch else ", marginalize_batch=False"
        return f"{super().extra_repr()}, leak={self.leak}{batch}, seed={self.seed}"
