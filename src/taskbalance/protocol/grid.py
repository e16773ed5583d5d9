"""Search grids of the protocol: the Scalarization simplex, UW-SO temperatures, learning rates."""

from __future__ import annotations

import math
from fractions import Fraction

# Kirchdorfer et al. 2024, Sec. 5: UW-SO's temperature grid, extended upward when losses are small.
PAPER_TEMPERATURES: tuple[float, ...] = (1.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0)


class GridTooLargeError(ValueError):
    """The requested grid has more points than allowed; the message says how to coarsen it."""


def simplex_grid_size(num_tasks: int, step: float = 0.1, min_weight: float = 0.1) -> int:
    """Number of points of :func:`simplex_grid`: compositions of the free units, C(free + K − 1, K − 1)."""
    units, floor = _units(step, min_weight)
    free = units - num_tasks * floor
    if free < 0:
        return 0
    return math.comb(free + num_tasks - 1, num_tasks - 1)


def _units(step: float, min_weight: float) -> tuple[int, int]:
    if not 0 < step <= 1:
        raise ValueError(f"simplex step must be in (0, 1], got {step}")
    step_fraction = Fraction(step).limit_denominator(10_000)
    units = 1 / step_fraction
    if units.denominator != 1:
        raise ValueError(f"simplex step must divide 1 evenly (e.g. 0.1, 0.2, 0.25), got {step}")
    floor = Fraction(min_weight).limit_denominator(10_000) / step_fraction
    if min_weight < 0 or floor.denominator != 1:
        raise ValueError(f"min_weight must be a non-negative multiple of the step {step}, got {min_weight}")
    return int(units), int(floor)


def simplex_grid(
    num_tasks: int, step: float = 0.1, min_weight: float = 0.1, max_points: int = 500
) -> list[tuple[float, ...]]:
    """All weight vectors on the simplex with the given step and every weight ≥ ``min_weight``.

    The paper's brute-force Scalarization grid (Kirchdorfer et al. 2024, Sec. 5): step 0.1, every weight ≥ 0.1,
    weights sum to 1 — 9 points for 2 tasks, 36 for 3. The count grows as C(1/step − K·min/step + K − 1, K − 1), so
    for many tasks the grid is refused with an error that suggests a coarser step rather than silently truncated.

    Example:
        >>> len(simplex_grid(2)), len(simplex_grid(3))
        (9, 36)
        >>> simplex_grid(2, step=0.25, min_weight=0.25)
        [(0.25, 0.75), (0.5, 0.5), (0.75, 0.25)]
    """
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be ≥ 1, got {num_tasks}")
    units, floor = _units(step, min_weight)
    free = units - num_tasks * floor
    if free < 0:
        raise GridTooLargeError(
            f"no simplex point for {num_tasks} tasks with every weight ≥ {min_weight}: "
            f"{num_tasks}·{min_weight} > 1; lower min_weight"
        )
    size = simplex_grid_size(num_tasks, step, min_weight)
    if size > max_points:
        raise GridTooLargeError(
            f"the Scalarization grid for {num_tasks} tasks with step {step} has {size} points (> max_points="
            f"{max_points}); use a coarser step or raise max_points"
        )
    points: list[tuple[float, ...]] = []

    def extend(prefix: list[int], remaining: int, slots: int) -> None:
        if slots == 1:
            counts = [*prefix, remaining]
            points.append(tuple(round((c + floor) / units, 10) for c in counts))
            return
        for count in range(remaining + 1):
            extend([*prefix, count], remaining - count, slots - 1)

    extend([], free, num_tasks)
    return points
