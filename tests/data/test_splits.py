"""The carved validation split: the paper's sizes, disjointness, determinism and the documented hash rule."""

from __future__ import annotations

import hashlib

import pytest

from taskbalance.data.splits import carve_validation, validation_count


def test_validation_count_matches_the_paper_and_a_fifth_otherwise() -> None:
    assert validation_count(795) == 159  # NYUv2
    assert validation_count(2975) == 595  # Cityscapes
    assert validation_count(10) == 2
    assert validation_count(12) == 2  # 2.4 → 2
    assert validation_count(13) == 3  # 2.6 → 3
    assert validation_count(2) == 1 and validation_count(3) == 1  # at least one
    with pytest.raises(ValueError, match="at least 2 training images"):
        validation_count(1)


def test_carved_split_is_disjoint_complete_sorted_and_deterministic() -> None:
    indices = list(range(795))
    train, val = carve_validation(indices, 159, seed=0)
    assert len(train) == 636 and len(val) == 159
    assert set(train).isdisjoint(val) and sorted(train + val) == indices
    assert train == sorted(train) and val == sorted(val)
    assert carve_validation(indices, 159, seed=0) == (train, val)
    assert carve_validation(indices, 159, seed=1)[1] != val


def test_carved_split_follows_the_documented_sha256_rule() -> None:
    indices = [3, 7, 8, 20, 21, 40]
    keys = {i: hashlib.sha256(f"7/{i}".encode()).digest() for i in indices}
    expected = sorted(sorted(indices, key=keys.__getitem__)[:2])
    assert carve_validation(indices, 2, seed=7)[1] == expected
    # The rule depends on the index values, not their order.
    assert carve_validation(list(reversed(indices)), 2, seed=7)[1] == expected


def test_carve_rejects_bad_counts_and_duplicates() -> None:
    with pytest.raises(ValueError, match=r"in \[1, 3\]"):
        carve_validation(range(4), 4)
    with pytest.raises(ValueError, match="distinct"):
        carve_validation([1, 1, 2], 1)
