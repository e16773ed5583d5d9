"""Kendall's τ against its definition counted pair by pair, on every permutation of five methods."""

from __future__ import annotations

from itertools import combinations, permutations

import pytest

from taskbalance.report.ranking import common_items, kendall_tau

METHODS = ["uwso", "gls", "ew", "dwa", "rlw"]


def _by_pairs(first: list[str], second: list[str]) -> float:
    rank_a = {m: i for i, m in enumerate(first)}
    rank_b = {m: i for i, m in enumerate(second)}
    signs = [
        (rank_a[x] - rank_a[y]) * (rank_b[x] - rank_b[y]) for x, y in combinations(first, 2)
    ]
    return sum(1 if s > 0 else -1 for s in signs) / len(signs)


def test_tau_counts_concordant_minus_discordant_pairs_on_every_order() -> None:
    values = set()
    for order in permutations(METHODS):
        tau = kendall_tau(METHODS, list(order))
        assert tau == pytest.approx(_by_pairs(METHODS, list(order))), order
        values.add(round(tau, 6))
    assert len(values) == 11  # τ takes every value (2c − 10)/10 for c = 0 … 10 concordant pairs


def test_same_and_reversed_order() -> None:
    assert kendall_tau(METHODS, METHODS) == 1.0
    assert kendall_tau(METHODS, METHODS[::-1]) == -1.0


def test_one_swap_of_five_costs_two_tenths() -> None:
    swapped = ["gls", "uwso", "ew", "dwa", "rlw"]  # one discordant pair of ten
    assert kendall_tau(METHODS, swapped) == pytest.approx(0.8)


def test_only_common_items_count() -> None:
    # Scalarization ranked only by the first table: τ is over the four others, which agree.
    assert kendall_tau(["scalarization", "uwso", "gls", "ew"], ["uwso", "gls", "ew", "rlw"]) == 1.0
    assert common_items(["scalarization", "uwso", "gls"], ["gls", "uwso"]) == ["uwso", "gls"]


def test_refuses_duplicates_and_too_few_common_items() -> None:
    with pytest.raises(ValueError, match="more than once"):
        kendall_tau(["ew", "ew"], ["ew"])
    with pytest.raises(ValueError, match="two items ranked by both"):
        kendall_tau(["ew", "uw"], ["ew", "gls"])
