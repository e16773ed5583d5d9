"""Checks of the per-task gradients that some gradient methods need before they divide by a norm or a cosine."""

from __future__ import annotations

import math

from torch import Tensor

from taskbalance.method import Method


def check_task_gradients(method: Method, squared_norms: Tensor, why_nonzero: str) -> None:
    """Raise a ``ValueError`` naming the method and the task whose gradient is zero or not finite.

    ``squared_norms`` (``[K]``) are those of the (scaled) task gradients, e.g. the diagonal of their Gram matrix. One
    combined reduction is read on the host (one sync); the message is built only on failure. ``why_nonzero`` says
    why the method cannot use a zero gradient (it ends the message).

    Example:
        >>> import torch
        >>> from taskbalance.aggregation import MGDA
        >>> check_task_gradients(MGDA(2), torch.tensor([1.0, 0.0]), "it divides by |g_k|")
        Traceback (most recent call last):
        ...
        ValueError: MGDA: the gradient of task 1 is zero; it divides by |g_k|
    """
    if bool(((squared_norms > 0) & (squared_norms < math.inf)).all()):
        return
    name = type(method).__name__
    for k, value in enumerate(squared_norms.tolist()):
        if not math.isfinite(value):
            raise ValueError(f"{name}: the gradient of {method.task_label(k)} is not finite (|g|² = {value})")
        if value <= 0:
            raise ValueError(f"{name}: the gradient of {method.task_label(k)} is zero; {why_nonzero}")
    raise AssertionError("unreachable: a squared norm failed the combined check but not the per-task one")
