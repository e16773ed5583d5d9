"""taskbalance: loss weighting for multi-task learning.

The core is analytical uncertainty weighting (UW-O, UW-SO; Kirchdorfer et al. 2024, arXiv 2408.07985) with the
baselines of that paper, and the paper's benchmark protocol.
"""

__version__ = "0.1.0"
