"""Agreement of two rankings of methods: Kendall's τ over the methods both rank.

τ = (concordant − discordant) / (n·(n − 1)/2) over the pairs of the n common methods (Kendall 1938); a pair is
concordant when both rankings order it the same way. Rankings here are strict orders (a table's rank column), so
τ-a and τ-b coincide: 1 = the same order, −1 = the reversed order, ≈ 0 = unrelated.

Example:
    >>> kendall_tau(["uwso", "gls", "ew"], ["uwso", "ew", "gls"])
    0.3333333333333333
    >>> kendall_tau(["a", "b", "c"], ["c", "b", "a"])
    -1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations


def kendall_tau(first: Sequence[str], second: Sequence[str]) -> float:
    """Kendall's τ of two rankings (best first) over the items both contain, in ``[-1, 1]``.

    Raises:
        ValueError: a ranking names an item twice, or fewer than two items are common to both.
    """
    for name, ranking in (("first", first), ("second", second)):
        if len(set(ranking)) != len(ranking):
            raise ValueError(f"the {name} ranking names an item more than once: {list(ranking)}")
    common = [item for item in first if item in set(second)]
    if len(common) < 2:
        raise ValueError(f"Kendall's τ needs two items ranked by both, got {common}")
    position = {item: index for index, item in enumerate(second)}
    pairs = list(combinations(common, 2))  # in the first ranking's order: a before b
    concordant = sum(1 for a, b in pairs if position[a] < position[b])
    return (2 * concordant - len(pairs)) / len(pairs)


def common_items(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """The items both rankings contain, in the first ranking's order."""
    in_second = set(second)
    return [item for item in first if item in in_second]
