"""taskbalance: loss weighting for multi-task learning.

The core is analytical uncertainty weighting (UW-O, UW-SO; Kirchdorfer et al. 2024, arXiv 2408.07985) with the
baselines of that paper, and the paper's benchmark protocol.

Example:
    >>> import torch
    >>> from taskbalance.weighting import UWSO
    >>> weighting = UWSO(2, temperature=1.0)
    >>> total = weighting(torch.tensor([0.5, 2.0], requires_grad=True))
    >>> round(float(weighting.last_weights.sum()), 6)
    1.0
"""

from taskbalance.protocol.delta_m import delta_m, delta_m_per_task

__version__ = "0.1.0"

__all__ = ["__version__", "delta_m", "delta_m_per_task"]
