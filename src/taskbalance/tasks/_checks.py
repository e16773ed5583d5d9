"""Input checks shared by the task kinds, so every kind reports bad input the same way.

Errors name the task and quote the offending shape, dtype or value. The checks look at shapes and dtypes only
(no host synchronisation); checks of values (e.g. class labels in range) live in the meters, which synchronise
anyway when they accumulate.
"""

from __future__ import annotations

import torch
from torch import Tensor


def shape_mismatch(task: str, prediction: Tensor, target: Tensor, expected: str) -> ValueError:
    """The error for a prediction/target pair whose shapes do not fit together."""
    return ValueError(
        f"task {task!r}: prediction shape {tuple(prediction.shape)} and target shape {tuple(target.shape)} "
        f"do not match; expected {expected}"
    )


def require_integer_target(task: str, target: Tensor) -> None:
    """Class labels must be an integer dtype (a float label map is a data bug: it would be truncated silently)."""
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise ValueError(f"task {task!r}: target must hold integer class labels (e.g. torch.long), got {target.dtype}")


def require_floating_prediction(task: str, prediction: Tensor) -> None:
    if not prediction.dtype.is_floating_point:
        raise ValueError(f"task {task!r}: prediction must be a floating-point tensor, got {prediction.dtype}")


def require_positive_int(owner: str, field: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum`` (bool is refused: ``True`` classes is always a mistake)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {field} must be an integer ≥ {minimum}, got {value!r}")
    return value
