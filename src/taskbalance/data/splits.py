"""A seeded validation split carved from a training folder, stable across platforms and library versions.

MTAN's pre-processed NYUv2 and Cityscapes ship only ``train`` and ``val`` folders, and the ``val`` folder is used as
the test set, so the validation split is carved from ``train``. The paper's sizes (Kirchdorfer et al. 2024, after
Liu et al. 2019) are 159 of NYUv2's 795 and 595 of Cityscapes' 2975 training images: a fifth in both cases, which is
the fraction used for any other size (rounded half up, at least one image).

Which images go to validation: every index ``i`` gets the key ``SHA-256(f"{seed}/{i}")`` and the ``count`` indices
with the smallest keys form the validation split. Unlike a permutation drawn from a random generator, the result
depends only on (seed, index set, count), never on the numpy/torch version or the platform, and it can be recomputed
by hand from this paragraph.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

VALIDATION_FRACTION = 0.2
"""159/795 (NYUv2) = 595/2975 (Cityscapes) = 1/5."""


def validation_count(num_train: int) -> int:
    """How many of ``num_train`` training images form the validation split: ``max(1, ⌊n/5 + ½⌋)``.

    Example:
        >>> validation_count(795), validation_count(2975), validation_count(7), validation_count(2)
        (159, 595, 1, 1)
    """
    if num_train < 2:
        raise ValueError(f"need at least 2 training images to carve a validation split, got {num_train}")
    return max(1, int(num_train * VALIDATION_FRACTION + 0.5))


def _split_key(seed: int, index: int) -> bytes:
    return hashlib.sha256(f"{seed}/{index}".encode()).digest()


def carve_validation(indices: Sequence[int], count: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (train, validation), both sorted and disjoint, with ``count`` validation indices.

    The validation indices are the ``count`` indices whose key ``SHA-256(f"{seed}/{index}")`` is smallest.

    Example:
        >>> train, val = carve_validation(range(10), 2, seed=0)
        >>> len(train), len(val), set(train).isdisjoint(val), sorted(train + val) == list(range(10))
        (8, 2, True, True)
    """
    unique = sorted(set(indices))
    if len(unique) != len(indices):
        raise ValueError(f"indices must be distinct, got {len(indices)} indices of which {len(unique)} distinct")
    if not 0 < count < len(unique):
        raise ValueError(f"validation count must be in [1, {len(unique) - 1}] for {len(unique)} indices, got {count}")
    chosen = set(sorted(unique, key=lambda index: _split_key(seed, index))[:count])
    return [i for i in unique if i not in chosen], sorted(chosen)
