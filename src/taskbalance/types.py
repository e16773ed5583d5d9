"""Plain value types shared across layers (no torch modules here, so every layer may import it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeadSpec:
    """What a model's head for one task must output.

    Attributes:
        out_channels: channels (dense) or features (vector) of the prediction.
        dense: True for a per-pixel map ``[B, C, H, W]``, False for a vector ``[B, C]``.
        size: spatial size ``(H, W)`` of a dense prediction, or None for the input size.
    """

    out_channels: int
    dense: bool
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name and direction (``higher_is_better`` is the paper's h_i = 1)."""

    name: str
    higher_is_better: bool


@dataclass(frozen=True)
class SearchSpace:
    """The settings from which a method derives its search grid (see ``search_grid`` on the method classes).

    A benchmark preset fixes these once; each method that has a grid turns them into its hyper-parameter points, so
    the protocol never needs to know which method searches what.

    Attributes:
        num_tasks: K, the number of trained tasks (the Scalarization simplex has K coordinates).
        temperatures: UW-SO's temperature grid.
        simplex_step: spacing of the Scalarization simplex grid.
        simplex_min_weight: smallest weight of a Scalarization grid point.
    """

    num_tasks: int
    temperatures: tuple[float, ...] = ()
    simplex_step: float = 0.1
    simplex_min_weight: float = 0.1
