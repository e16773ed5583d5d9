"""Type checks of hyper-parameter values shared by the method classes: a value of the wrong type is a ``ValueError``
naming the method and the option (``"hot"`` as a temperature is refused as clearly as ``-2``). The range checks
(finite, > 0, …) stay with each class, whose messages name the task where one applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Real

from torch import Tensor


def real_number(owner: str, option: str, value: object) -> float:
    """``value`` as a float when it is a real number (a bool or a string is not), else a ``ValueError``.

    Example:
        >>> real_number("UWSO", "temperature", 2)
        2.0
        >>> real_number("UWSO", "temperature", "hot")
        Traceback (most recent call last):
        ...
        ValueError: UWSO: temperature must be a number, got 'hot'
    """
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{owner}: {option} must be a number, got {value!r}")
    return float(value)


def real_numbers(owner: str, option: str, values: object) -> list[float]:
    """``values`` (a list, tuple or 1-D tensor of real numbers) as floats, else a ``ValueError``.

    Example:
        >>> real_numbers("Scalarization", "weights", [0.5, 0.5])
        [0.5, 0.5]
        >>> real_numbers("Scalarization", "weights", "abc")
        Traceback (most recent call last):
        ...
        ValueError: Scalarization: weights must be a list of numbers, got 'abc'
    """
    if isinstance(values, Tensor):
        values = values.tolist() if values.dim() == 1 else None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{owner}: {option} must be a list of numbers, got {values!r}")
    items = list(values)
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, Real):
            raise ValueError(f"{owner}: {option}[{index}] must be a number, got {item!r} (in {items!r})")
    return [float(item) for item in items]
