"""MultiFashion: shipped-file checksum, composition semantics on hand-built items, determinism, splits, shapes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from taskbalance import data as datasets
from taskbalance.data.errors import DatasetFormatError
from taskbalance.data.multifashion import (
    COVER_THRESHOLD,
    PROVENANCE_FILE,
    SOURCE_FILE,
    VAL_SOURCES,
    block_mean,
    compose,
    embedded_file,
    load_sources,
    multifashion,
    pair_sources,
)
from taskbalance.tasks import Classification, Regression

SMALL = {"num_train": 300, "num_val": 60, "num_test": 60}


@pytest.fixture(scope="module")
def small() -> datasets.MultiTaskData:
    return multifashion(**SMALL, seed=0)


@pytest.fixture(scope="module")
def sources() -> dict[str, np.ndarray]:
    return load_sources()


def shipped_copy(tmp_path: Path) -> Path:
    copy = tmp_path / SOURCE_FILE
    copy.write_bytes(embedded_file(SOURCE_FILE).read_bytes())
    return copy


# --- the shipped file and its provenance -------------------------------------------------------------------------


def test_shipped_file_matches_provenance_and_is_class_balanced() -> None:
    record = json.loads(embedded_file(PROVENANCE_FILE).read_text(encoding="utf-8"))
    payload = embedded_file(SOURCE_FILE).read_bytes()
    assert hashlib.sha256(payload).hexdigest() == record["shipped_file"]["sha256"]
    assert len(payload) == record["shipped_file"]["bytes"] <= 6_000_000
    arrays = load_sources()
    assert arrays["train_images"].shape == (10_000, 28, 28) and arrays["test_images"].shape == (2_000, 28, 28)
    assert arrays["train_images"].dtype == np.uint8
    assert np.bincount(arrays["train_labels"]).tolist() == [1000] * 10
    assert np.bincount(arrays["test_labels"]).tolist() == [200] * 10
    assert record["selection"]["counts"] == {"train": 10_000, "test": 2_000}
    assert record["source"]["debian_package"] == "dataset-fashion-mnist"
    notice = embedded_file("NOTICE-fashion-mnist.txt").read_text(encoding="utf-8")
    assert "Zalando SE" in notice and "Permission is hereby granted, free of charge" in notice


def test_intact_copy_loads_the_same_arrays(tmp_path: Path, sources: dict[str, np.ndarray]) -> None:
    loaded = load_sources(shipped_copy(tmp_path))
    for name, array in sources.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_corrupted_copy_raises_naming_the_file(tmp_path: Path) -> None:
    copy = shipped_copy(tmp_path)
    payload = bytearray(copy.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    copy.write_bytes(bytes(payload))
    with pytest.raises(DatasetFormatError, match="sha256") as caught:
        load_sources(copy)
    assert str(copy) in str(caught.value)
    assert hashlib.sha256(bytes(payload)).hexdigest() in str(caught.value)


def test_missing_file_and_bad_provenance_raise_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.npz"
    with pytest.raises(DatasetFormatError, match="missing") as caught:
        load_sources(missing)
    assert str(missing) in str(caught.value)
    provenance = tmp_path / "provenance.json"
    provenance.write_text('{"shipped_file": {}}', encoding="utf-8")
    with pytest.raises(DatasetFormatError) as caught:
        load_sources(shipped_copy(tmp_path), provenance)
    assert str(provenance) in str(caught.value)


def test_a_provenance_with_another_hash_is_a_mismatch(tmp_path: Path) -> None:
    source = tmp_path / "copy.npz"
    shutil.copyfile(shipped_copy(tmp_path), source)
    provenance = tmp_path / "provenance.json"
    provenance.write_text(json.dumps({"shipped_file": {"sha256": "0" * 64}}), encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"0{64}"):
        load_sources(source, provenance)


# --- composition semantics, worked by hand -----------------------------------------------------------------------


def test_compose_occlusion_and_depth_by_hand() -> None:
    # 2×2 items on a 3×3 canvas: left covers rows/cols 0-1, right rows/cols 1-2, they overlap at pixel (1, 1).
    left = np.array([[[200, 200], [200, 10]]], dtype=np.uint8)  # its (1, 1) pixel is faint: below the threshold
    right = np.array([[[90, 0], [90, 90]]], dtype=np.uint8)  # its (0, 1) pixel (canvas (1, 2)) is empty
    assert 10 < COVER_THRESHOLD <= 90
    images, depth = compose(np.repeat(left, 2, 0), np.repeat(right, 2, 0), np.array([True, False]), canvas=3)
    # Left on top: the faint left pixel at (1, 1) is transparent, so the right item (90) shows there.
    assert (images[0] * 255).round().astype(int).tolist() == [[200, 200, 0], [200, 90, 0], [0, 90, 90]]
    assert depth[0].tolist() == [[0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [1.0, 0.5, 0.5]]
    # Right on top: the right item covers (1, 1); the left item is visible where the right one is not.
    assert (images[1] * 255).round().astype(int).tolist() == [[200, 200, 0], [200, 90, 0], [0, 90, 90]]
    assert depth[1].tolist() == [[0.5, 0.5, 1.0], [0.5, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_compose_upper_item_hides_the_lower_one() -> None:
    bright, dim = np.full((1, 2, 2), 250, np.uint8), np.full((1, 2, 2), 40, np.uint8)
    images, depth = compose(dim, bright, np.array([True]), canvas=3)
    # The dim left item is on top: it hides the bright right item in the overlap (no max blending).
    assert round(float(images[0, 1, 1]) * 255) == 40
    assert depth[0, 1, 1] == 0.0 and depth[0, 2, 2] == 0.5 and depth[0, 0, 2] == 1.0


def test_block_mean_by_hand() -> None:
    maps = np.array([[[0.0, 0.5, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.0, 0.5], [0.5, 0.5, 1.0, 0.5]]])
    assert block_mean(maps.astype(np.float32), 2).tolist() == [[[0.125, 1.0], [0.5, 0.5]]]
    with pytest.raises(ValueError, match="3×3"):
        block_mean(np.zeros((1, 3, 3), np.float32), 2)


def test_compose_rejects_mismatched_items() -> None:
    with pytest.raises(ValueError, match="left_on_top"):
        compose(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 2), np.uint8), np.array([True]), canvas=3)
    with pytest.raises(ValueError, match="do not fit"):
        compose(np.zeros((1, 4, 4), np.uint8), np.zeros((1, 4, 4), np.uint8), np.array([True]), canvas=3)


def test_pairing_uses_each_source_equally_on_the_left_and_never_pairs_an_image_with_itself() -> None:
    left, right = pair_sources(10, 30, np.random.default_rng(5))
    assert np.bincount(left, minlength=10).tolist() == [3] * 10
    assert not np.any(left == right)
    assert set(right.tolist()) <= set(range(10))
    with pytest.raises(ValueError, match="at least 2"):
        pair_sources(1, 3, np.random.default_rng(0))


# --- the composed dataset ----------------------------------------------------------------------------------------


def test_shapes_dtypes_and_ranges(small: datasets.MultiTaskData) -> None:
    assert small.input_shape == (1, 36, 36)
    assert list(small.tasks) == ["left", "right", "depth"]
    assert isinstance(small.tasks["left"], Classification) and small.tasks["left"].num_classes == 10
    depth_task = small.tasks["depth"]
    assert isinstance(depth_task, Regression) and depth_task.head.size == (9, 9) and depth_task.loss_kind == "l1"
    for split, count in ((small.train, 300), (small.val, 60), (small.test, 60)):
        assert len(split) == count
        image, targets = split[0]
        assert image.shape == (1, 36, 36) and image.dtype == torch.float32
        assert targets["left"].dtype == torch.int64 and targets["left"].shape == ()
        assert targets["depth"].shape == (1, 9, 9) and targets["depth"].dtype == torch.float32
        assert 0.0 <= float(split.images.min()) and float(split.images.max()) <= 1.0
        for name in ("left", "right"):
            assert 0 <= int(split.targets[name].min()) and int(split.targets[name].max()) <= 9
        depth = split.targets["depth"]
        # Each cell is the mean of 16 pixel depths in {0, 0.5, 1}: a multiple of 1/32 in [0, 1].
        assert torch.equal(depth * 32, (depth * 32).round()) and 0.0 <= float(depth.min()) <= float(depth.max()) <= 1.0


def test_samples_are_the_composition_of_their_recorded_sources(
    small: datasets.MultiTaskData, sources: dict[str, np.ndarray]
) -> None:
    for split in (small.train, small.val, small.test):
        images, labels = sources[f"{split.source_split}_images"], sources[f"{split.source_split}_labels"]
        composed, depth = compose(
            images[split.left_source], images[split.right_source], split.left_on_top, canvas=36
        )
        assert torch.equal(split.images[:, 0], torch.from_numpy(composed))
        assert torch.equal(split.targets["depth"][:, 0], torch.from_numpy(block_mean(depth, 4)))
        assert split.targets["left"].tolist() == labels[split.left_source].tolist()
        assert split.targets["right"].tolist() == labels[split.right_source].tolist()
        assert not np.any(split.left_source == split.right_source)


def test_depth_map_semantics_on_shipped_samples(small: datasets.MultiTaskData) -> None:
    split = small.train
    depth = split.targets["depth"][:, 0]
    # Top-right and bottom-left 2×2 cells (8×8 pixels) are outside both items: background.
    assert torch.all(depth[:, :2, 7:] == 1.0) and torch.all(depth[:, 7:, :2] == 1.0)
    # Rows 0-1 (pixels 0-7) show only the left item: depth 0 or 1 per pixel when it is the upper one, 0.5 or 1 below.
    top_band = depth[:, :2, :7]
    on_top = torch.from_numpy(split.left_on_top)
    assert torch.equal(top_band[on_top] * 16, (top_band[on_top] * 16).round())
    assert torch.all(top_band[~on_top] >= 0.5)
    assert 0.3 < float(on_top.float().mean()) < 0.7


def test_same_seed_same_tensors_other_seed_different() -> None:
    first, again, other = (multifashion(**SMALL, seed=s) for s in (7, 7, 8))
    for name in ("train", "val", "test"):
        a, b, c = getattr(first, name), getattr(again, name), getattr(other, name)
        assert torch.equal(a.images, b.images)
        assert all(torch.equal(a.targets[t], b.targets[t]) for t in a.targets)
        assert not torch.equal(a.images, c.images)


def test_num_train_does_not_change_val_and_test() -> None:
    fewer, more = multifashion(**{**SMALL, "num_train": 50}), multifashion(**{**SMALL, "num_train": 80})
    assert torch.equal(fewer.val.images, more.val.images) and torch.equal(fewer.test.images, more.test.images)
    assert (len(fewer.train), len(more.train)) == (50, 80)


def test_splits_use_disjoint_source_images(small: datasets.MultiTaskData) -> None:
    train_rows = set(small.train.left_source.tolist()) | set(small.train.right_source.tolist())
    val_rows = set(small.val.left_source.tolist()) | set(small.val.right_source.tolist())
    assert small.train.source_split == small.val.source_split == "train" and small.test.source_split == "test"
    assert not train_rows & val_rows
    assert len(val_rows) <= VAL_SOURCES
    # The validation pool is a fixed carve: every val row comes from the same 1,000 rows at any sample count.
    big = multifashion(num_train=2000, num_val=2000, num_test=10)
    big_train = set(big.train.left_source.tolist()) | set(big.train.right_source.tolist())
    big_val = set(big.val.left_source.tolist()) | set(big.val.right_source.tolist())
    assert len(big_val) == VAL_SOURCES and not big_train & big_val
    assert val_rows <= big_val and not train_rows & big_val


def test_task_subset_and_registry() -> None:
    data = datasets.create("multifashion", num_train=20, num_val=10, num_test=10, tasks=["depth", "left"])
    assert list(data.tasks) == ["depth", "left"]
    assert sorted(data.train[0][1]) == ["depth", "left"]
    with pytest.raises(KeyError, match="colour"):
        multifashion(num_train=20, num_val=10, num_test=10, tasks=["colour"])


@pytest.mark.parametrize(("option", "value"), [("num_train", 0), ("num_val", 2.5), ("num_test", True), ("seed", -1)])
def test_bad_options_name_the_option(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option) as caught:
        multifashion(**{**SMALL, option: value})
    assert repr(value) in str(caught.value)
