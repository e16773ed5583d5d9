"""Random task-gradient matrices for the property tests of the gradient methods."""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor

seeds = st.integers(0, 2**31 - 1)


def random_jacobian(seed: int, num_tasks: int, size: int, spread: float = 1.0) -> Tensor:
    """``K×P`` float64 gradients, row k scaled by ``exp(spread·z_k)`` (z standard normal) so norms differ."""
    generator = torch.Generator().manual_seed(seed)
    scales = torch.exp(spread * torch.randn(num_tasks, 1, generator=generator, dtype=torch.float64))
    return scales * torch.randn(num_tasks, size, generator=generator, dtype=torch.float64)
