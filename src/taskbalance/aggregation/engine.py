"""Per-task gradients for gradient methods: which leaves each task reaches, and two ways to differentiate.

- ``"loop"`` (what ``"auto"``, the default, picks on CPU): K ``torch.autograd.grad(loss_k, inputs,
  retain_graph=True)`` calls, measured on CPU (docs/performance.md) the fastest route. Each call asks for the shared
  targets (parameters or representation) *and* the leaves only task k reaches (its head), so one call per task also
  yields the head gradients and no head is backpropagated twice.
- ``"batched"``: one vectorised call (``is_grads_batched=True``: the K rows of the identity pushed through the graph
  at once with ``vmap``). Slower on CPU, and every head then runs K (mostly zero) backward rows, but on an
  accelerator fewer, larger kernels may win; measure with ``benchmarks/gradient_methods.py --batched``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from taskbalance.graph import task_leaves, task_roots

Strategy = Literal["auto", "loop", "batched"]
STRATEGIES: tuple[str, ...] = ("auto", "loop", "batched")

MEASURED_FASTEST: dict[str, str] = {"cpu": "loop"}
"""Device type → the strategy measured fastest there (``docs/performance.md``); ``"auto"`` picks from it.

Only the CPU is measured so far (the loop: 1.02–1.16× faster than batched, ``benchmarks/gradient_methods.py``).
A device type without a committed measurement gets the loop as well, until ``benchmarks/gpu_check.py`` has been
run there and its result entered here.
"""

__all__ = [
    "MEASURED_FASTEST",
    "STRATEGIES",
    "Strategy",
    "per_task_gradients",
    "resolve_strategy",
    "stack_tasks",
    "task_leaves",
    "task_roots",
]


def resolve_strategy(strategy: str, device: torch.device) -> str:
    """``"auto"`` → the strategy measured fastest on ``device``'s type (the loop where none is measured).

    Example:
        >>> resolve_strategy("auto", torch.device("cpu")), resolve_strategy("batched", torch.device("cpu"))
        ('loop', 'batched')
    """
    if strategy != "auto":
        return strategy
    return MEASURED_FASTEST.get(device.type, "loop")


def per_task_gradients(
    losses: Tensor | Sequence[Tensor],
    targets: Sequence[Tensor],
    extra_inputs: Sequence[Sequence[Tensor]],
    *,
    strategy: Strategy = "auto",
) -> tuple[list[Tensor | None], list[list[Tensor | None]]]:
    """Gradients of every ``losses[k]`` w.r.t. ``targets`` and w.r.t. its own ``extra_inputs[k]``.

    With the ``"loop"`` strategy and a stacked ``losses`` tensor each call backpropagates through the stack node,
    which sends zero gradients through the other tasks' heads (the autograd engine cannot skip them); a list of K
    scalar losses avoids that. The last call does not retain the graph, so the buffers of the part every task walked
    through are freed as soon as possible (the encoder's graph stays alive in representation mode: no task call
    walks it). The ``"batched"`` strategy makes one call with ``is_grads_batched=True`` (see the module docstring).

    Returns:
        ``(stacked, by_extra)``: ``stacked[i]`` is ``[K, *targets[i].shape]``, row k task k's gradient of target i
        (zeros for a task that does not reach it), or None when no task reaches it; ``by_extra[k][j]`` is task k's
        gradient of ``extra_inputs[k][j]`` (None where unused).
    """
    resolved = resolve_strategy(strategy, targets[0].device if targets else torch.device("cpu"))
    if resolved == "batched":
        return _batched_gradients(losses, targets, extra_inputs)
    if resolved != "loop":
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    num_tasks = len(losses)
    by_target: list[list[Tensor | None]] = [[None] * num_tasks for _ in targets]
    by_extra: list[list[Tensor | None]] = []
    for k in range(num_tasks):
        inputs = [*targets, *extra_inputs[k]]
        grads = torch.autograd.grad(losses[k], inputs, retain_graph=k < num_tasks - 1, allow_unused=True)
        for i in range(len(targets)):
            by_target[i][k] = grads[i]
        by_extra.append(list(grads[len(targets) :]))
    stacked: list[Tensor | None] = []
    for i, target in enumerate(targets):
        grads_i = by_target[i]
        stacked.append(None if all(g is None for g in grads_i) else stack_tasks(grads_i, target))
        by_target[i] = []  # drop the per-task tensors now that they are copied into the stack
    return stacked, by_extra


def _batched_gradients(
    losses: Tensor | Sequence[Tensor], targets: Sequence[Tensor], extra_inputs: Sequence[Sequence[Tensor]]
) -> tuple[list[Tensor | None], list[list[Tensor | None]]]:
    stacked_losses = losses if isinstance(losses, Tensor) else torch.stack(list(losses))
    num_tasks = stacked_losses.shape[0]
    positions: dict[int, int] = {}
    extras: list[Tensor] = []
    for leaves in extra_inputs:
        for leaf in leaves:
            if id(leaf) not in positions:
                positions[id(leaf)] = len(targets) + len(extras)
                extras.append(leaf)
    rows = torch.eye(num_tasks, dtype=stacked_losses.dtype, device=stacked_losses.device)
    grads = torch.autograd.grad(
        stacked_losses, [*targets, *extras], grad_outputs=rows, is_grads_batched=True, allow_unused=True
    )
    by_extra = [
        [None if grads[positions[id(leaf)]] is None else grads[positions[id(leaf)]][k] for leaf in extra_inputs[k]]
        for k in range(num_tasks)
    ]
    return list(grads[: len(targets)]), by_extra


def stack_tasks(grads: list[Tensor | None], like: Tensor) -> Tensor:
    """``[K, *like.shape]`` from one target's K task gradients, zeros where a task does not reach it."""
    return torch.stack([g if g is not None else torch.zeros_like(like) for g in grads])
