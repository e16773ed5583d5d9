"""Walking the autograd graph: each task's loss node, and the leaf tensors a loss reaches.

Pure-Python walks over ``grad_fn`` nodes: a few microseconds per node, no tensor work and no host sync.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def task_roots(losses: Tensor | Sequence[Tensor]) -> list[object]:
    """The autograd node of each task's own loss.

    For a stacked tensor (``torch.stack([l_1, …, l_K])``) these are the stack's inputs, not ``losses[k]``: walking
    from ``losses[k]`` would pass the stack node and reach every task's head.
    """
    if not isinstance(losses, Tensor):
        return [loss.grad_fn for loss in losses]
    node = losses.grad_fn
    if node is not None and type(node).__name__.startswith("StackBackward") and len(node.next_functions) == len(losses):
        return [child for child, _ in node.next_functions]
    return [losses[k].grad_fn for k in range(losses.shape[0])]


def task_leaves(root: object, *, stop_at: Sequence[object]) -> list[Tensor]:
    """Leaf tensors requiring grad reachable from the autograd node ``root`` without passing ``stop_at`` nodes.

    Args:
        root: a task's loss node (see :func:`task_roots`).
        stop_at: autograd nodes (``grad_fn`` objects) where the walk stops, e.g. the representation's node.

    A pure-Python walk over the graph nodes: a few microseconds per node, no tensor work and no host sync.
    """
    if root is None:
        return []
    stops = {id(node) for node in stop_at if node is not None}
    seen: set[int] = set()
    leaves: list[Tensor] = []
    pending = [root]
    while pending:
        node = pending.pop()
        key = id(node)
        if key in seen or key in stops:
            continue
        seen.add(key)
        variable = getattr(node, "variable", None)  # AccumulateGrad nodes hold their leaf tensor
        if variable is not None:
            leaves.append(variable)
            continue
        pending.extend(child for child, _ in getattr(node, "next_functions", ()) if child is not None)
    return leaves
