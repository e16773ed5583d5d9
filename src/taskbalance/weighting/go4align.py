"""GO4Align: tasks grouped by a risk-guided indicator, every task weighted by its group's mean indicator."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from taskbalance.validation import real_number
from taskbalance.weighting.base import LossWeighting
from taskbalance.weighting.registry import WEIGHTINGS


def kmeans_1d(values: Tensor, num_groups: int) -> Tensor:
    """The exact k-means partition of K scalars into at most ``num_groups`` groups; labels ``[K]`` (long, CPU).

    Minimises the within-group sum of squares ``Σ_g Σ_{k ∈ g} (x_k − x̄_g)²`` over all partitions into
    ``num_groups`` non-empty groups, globally. On a line an optimal partition consists of runs of consecutive values
    in sorted order (Fisher 1958, "On grouping for maximum homogeneity"; the dynamic programme of Wang & Song 2011,
    "Ckmeans.1d.dp"), so the programme below searches all of them in O(G·K²). Equal values are merged first (the
    programme runs on the distinct values, weighted by their counts): some optimal partition always keeps equal
    values together, so this loses nothing, and equal values share a group even where rounding could not tell two
    partitions apart. When there are fewer distinct values than ``num_groups``, each distinct value is its own group
    (cost 0, like every split of equal values, which would change no centroid), so fewer labels are used.

    Groups are numbered by increasing values (group 0 holds the smallest); of equal-cost partitions the one with the
    first split point is taken, so equal inputs always give equal labels. Computed in float64 on the CPU.

    Example:
        >>> kmeans_1d(torch.tensor([5.0, 1.0, 5.2, 0.9]), 2)
        tensor([1, 0, 1, 0])
        >>> kmeans_1d(torch.tensor([2.0, 2.0, 7.0]), 3)  # two distinct values: two groups
        tensor([0, 0, 1])
    """
    x = values.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or not 1 <= num_groups <= x.numel():
        raise ValueError(f"kmeans_1d: num_groups must be an int in [1, {x.numel()}], got {num_groups!r}")
    distinct, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    size = distinct.numel()
    groups = min(num_groups, size)
    weights = counts.to(torch.float64)
    centred = distinct - (weights * distinct).sum() / weights.sum()  # centring keeps prefix differences accurate
    zero = torch.zeros(1, dtype=torch.float64)
    mass = torch.cat([zero, weights.cumsum(0)])
    first = torch.cat([zero, (weights * centred).cumsum(0)])
    second = torch.cat([zero, (weights * centred.square()).cumsum(0)])
    start = torch.arange(size).unsqueeze(1)  # i
    end = torch.arange(size).unsqueeze(0)  # j
    valid = end >= start
    sizes = torch.where(valid, mass[end + 1] - mass[start], 1.0)
    sums = first[end + 1] - first[start]
    # cost[i, j]: sum of squares of the distinct values i..j (with their counts) around their mean; +inf if j < i.
    cost = torch.where(valid, (second[end + 1] - second[start] - sums.square() / sizes).clamp_min(0.0), math.inf)
    best = cost[0]  # best[j]: the least cost of values 0..j in one group
    split_points = []
    for _ in range(1, groups):
        # before[i]: the least cost of values 0..i−1 in the groups so far (+inf for i = 0: no group may be empty).
        before = torch.cat([torch.full((1,), math.inf, dtype=torch.float64), best[:-1]])
        candidates = before.unsqueeze(1) + cost  # [i, j]: last group = values i..j
        split = torch.argmin(candidates, dim=0)  # the first minimal i
        best = candidates.gather(0, split.unsqueeze(0)).squeeze(0)
        split_points.append(split)
    distinct_labels = torch.zeros(size, dtype=torch.long)
    last = size - 1
    for group in range(groups - 1, 0, -1):
        begin = int(split_points[group - 1][last])
        distinct_labels[begin : last + 1] = group
        last = begin - 1
    return distinct_labels[inverse]


@WEIGHTINGS.register("go4align")
class GO4Align(LossWeighting):
    """GO4Align: ``total = Σ_k ω_k·L_k``, ``ω_k`` = the mean indicator ``γ`` of task k's group, groups = k-means of γ.

    Shen, Wang, Xiao, van Noord & Worring, "GO4Align: Group Optimization for Multi-Task Alignment", NeurIPS 2024
    (arXiv 2404.06486), as the authors' released code computes it (github.com/autumn9999/GO4Align: the ``go4align``
    method, ``methods/cluster_methods.py``, NYUv2 trainer ``experiments/nyuv2/trainer.py``). Every step t:

        p_t = normalise(p_{t−1} ⊙ exp(−η·L_t)),  p_0 = 1/K       (so p_t,k ∝ exp(−η·Σ_{τ≤t} L_τ,k))
        γ_t,k = (Σ_j L_t,j / L_t,k)·p_t,k                         (the risk-guided indicator)
        J_t = argmin over partitions of the K tasks into G non-empty groups of Σ_g Σ_{k∈g} (γ_t,k − γ̄_t,g)²
        ω_t,k = γ̄_t,g(k)  (the centroid of task k's group),     total = Σ_k sg[ω_t,k]·L_t,k

    with η = ``robust_step_size`` and G = ``num_groups``. The indicator comes from the detached losses of the current
    step, which enter ``p`` before it is used (no warm-up: the first step already has ``p_1 ∝ exp(−η·L_1)``); the
    exponentiated step moves weight *away from* tasks with a larger accumulated loss, and ``Σ_j L_j / L_k``
    up-weights the tasks with the smaller current loss. Weights are recomputed every step; ``end_epoch`` does nothing.

    Normalisation: ``Σ_k p_k = 1``; ``Σ_k γ_k·L_k = Σ_k L_k`` (for equal losses γ = 1, the scale of EW's sum); the
    centroids keep each group's sum, so ``Σ_k ω_k = Σ_k γ_k``. ``G = K`` gives ``ω = γ``; ``G = 1`` — the default of
    the authors' NYUv2 trainer (``--num_groups 1``) — gives every task the mean indicator, i.e. EW's gradient times
    a step-dependent factor ``mean_k γ_k``. ``last_weights`` is ω (1 before the first call, the weights of equal
    losses); ``last_groups`` holds the group of each task in the last call (numbered by increasing centroid; −1
    before the first call). Tasks with equal indicators always share a group; when the indicators take fewer than G
    distinct values, fewer groups are used (every split of equal values would give the same weights). Every loss
    must be finite and > 0 (the indicator divides by it).

    Deviations from the authors' code, none of which changes the objective:

    - *The clustering is exact.* The authors' ``go4align`` calls ``kmeans`` of the ``kmeans_pytorch`` package (its
      import is commented out in the released file): Lloyd iterations from G randomly drawn tasks as initial centres
      (NumPy's global generator), which can stop in a local optimum and differ from run to run. Here the same
      objective — the within-group sum of squares of the K indicators, every group non-empty — is minimised
      globally by the exact one-dimensional dynamic programme :func:`kmeans_1d` (deterministic, for every K, no
      fallback needed). When Lloyd's iterations reach the global optimum the groups are the same. The released code
      also carries an SDP relaxation of k-means (``group_sdp_clustering``, Peng–Wei relaxation solved with CVXPY,
      groups read off as connected components) and spectral-clustering variants; they are separate methods there
      (other registry names, marked "rebuttal" in its ``experiments/utils.py``), not the ``go4align`` method.
    - ``p`` is kept as log-probabilities, ``log p ← log p − ηL − logsumexp(log p − ηL)``: the same update as the
      authors' multiply-and-renormalise, but it cannot turn into 0/0 when ``exp(−ηL)`` underflows for every task at
      once (a loss above ≈ 100/η in float32); the largest ``p_k`` is always ≥ 1/K. As in the authors' code, a task
      whose accumulated loss exceeds another's by more than ≈ 100/η (float32; ≈ 700/η in float64) gets a ``p_k``,
      and so a weight, that underflows to 0: the weights are ≥ 0, and > 0 short of that.
    - The grouping and the centroids are computed in float64 on the CPU (one host sync per step when
      ``1 < num_groups < K``; none for G = 1 or G = K); the authors' k-means runs in float32.
    - The authors' constructor also takes ``task_weights``, which ``go4align`` does not use; it is left out.

    What the released code fixes and the paper's text could not be checked against here: the sign of the
    exponentiated step, η = 1e-4, and G = 1 are the values of the code; the number of groups behind each published
    table is not stated in the code. G > K is refused (k-means cannot fill more groups than tasks; the authors'
    initialisation fails there too).

    Args:
        num_tasks: K.
        num_groups: G, 1 ≤ G ≤ K (default 1, the authors' NYUv2 trainer default).
        robust_step_size: η ≥ 0, step of the exponentiated update of ``p`` (default 1e-4, the authors'; η = 0 keeps
            ``p`` uniform).

    Example:
        >>> import torch
        >>> method = GO4Align(3, num_groups=2, robust_step_size=0.0)  # p stays 1/3: γ_k = mean(L)/L_k
        >>> method(torch.tensor([1.0, 1.2, 4.0]))  # γ = (2.0667, 1.7222, 0.5167): {task 0, task 1}, {task 2}
        tensor(6.2344)
        >>> method.last_weights, method.last_groups
        (tensor([1.8944, 1.8944, 0.5167]), tensor([1, 1, 0]))
        >>> GO4Align(2)(torch.tensor([1.0, 3.0]))  # G = 1: both tasks take the mean indicator
        tensor(5.3336)
    """

    formula = "Σ_k ω_k·L_k, ω_k = mean of γ over k's k-means group; γ_k = (Σ_j L_j/L_k)·p_k, p ∝ exp(−η·Σ_τ L_τ)"
    paper = "Shen et al., NeurIPS 2024 (arXiv 2404.06486)"
    hyperparameters: ClassVar[dict[str, str]] = {
        "num_groups": "G, number of task groups, 1 ≤ G ≤ K (default 1, the authors' NYUv2 trainer default)",
        "robust_step_size": "η ≥ 0 of the exponentiated update p ← normalise(p·exp(−η·L)) (default 1e-4)",
    }
    requires_positive_losses = True

    log_probs: Tensor
    last_groups: Tensor

    def __init__(self, num_tasks: int, *, num_groups: int = 1, robust_step_size: float = 1e-4, **common: Any) -> None:
        super().__init__(num_tasks, **common)
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or not 1 <= num_groups <= num_tasks:
            raise ValueError(
                f"GO4Align: num_groups must be an int in [1, num_tasks={num_tasks}], got {num_groups!r}"
            )
        step = real_number("GO4Align", "robust_step_size", robust_step_size)
        if not (math.isfinite(step) and step >= 0):
            raise ValueError(f"GO4Align: robust_step_size must be finite and >= 0, got {step}")
        self.num_groups = num_groups
        self.robust_step_size = step
        # log p, the authors' running distribution over the tasks; starts uniform.
        self.register_buffer("log_probs", torch.full((num_tasks,), -math.log(num_tasks)))
        self.register_buffer("last_groups", torch.full((num_tasks,), -1, dtype=torch.long), persistent=False)

    def combine(self, losses: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        state = values.to(self.log_probs.dtype)
        shifted = self.log_probs - self.robust_step_size * state
        self.log_probs = shifted - torch.logsumexp(shifted, dim=0)
        indicators = state.sum() / state * self.log_probs.exp()
        weights, groups = self._group(indicators)
        self.last_groups = groups
        weights = weights.to(values.dtype)
        return (weights * losses).sum(), weights

    def _group(self, indicators: Tensor) -> tuple[Tensor, Tensor]:
        """``(ω, groups)``: each task's group centroid and group index for the indicators γ."""
        if self.num_groups == 1:
            return indicators.mean().expand(self.num_tasks).clone(), torch.zeros_like(self.last_groups)
        if self.num_groups == self.num_tasks:  # every task alone: ω = γ; groups = ranks among the distinct values
            ordered, order = torch.sort(indicators, stable=True)
            dense = torch.cat([order.new_zeros(1), (ordered[1:] != ordered[:-1]).long().cumsum(0)])
            return indicators, torch.empty_like(order).scatter_(0, order, dense)
        exact = indicators.detach().to(device="cpu", dtype=torch.float64)
        labels = kmeans_1d(exact, self.num_groups)
        one_hot = torch.nn.functional.one_hot(labels, self.num_groups).to(torch.float64)  # [K, G]
        centroids = (one_hot.T @ exact) / one_hot.sum(dim=0).clamp_min(1.0)  # unused groups (repeated values): 0
        weights = centroids[labels].to(device=indicators.device, dtype=indicators.dtype)
        return weights, labels.to(indicators.device)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_groups={self.num_groups}, robust_step_size={self.robust_step_size}"
