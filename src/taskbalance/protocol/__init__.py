"""The paper's protocol: Δm, search grids, selection by validation Δm, and the benchmark driver."""

from taskbalance.protocol.delta_m import delta_m, delta_m_per_task
from taskbalance.protocol.grid import PAPER_TEMPERATURES, GridTooLargeError, simplex_grid, simplex_grid_size
from taskbalance.protocol.summary import BenchSummary, GridPoint, MethodSummary

__all__ = [
    "PAPER_TEMPERATURES",
    "BenchSummary",
    "GridPoint",
    "GridTooLargeError",
    "MethodSummary",
    "delta_m",
    "delta_m_per_task",
    "simplex_grid",
    "simplex_grid_size",
]
