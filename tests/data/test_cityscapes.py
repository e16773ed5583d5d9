"""Cityscapes in MTAN's layout: 7-class segmentation and inverse depth, splits, label folder and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import write_cityscapes

from taskbalance.data import DatasetFormatError, create
from taskbalance.data.cityscapes import cityscapes
from taskbalance.tasks import Depth, SemanticSegmentation


def test_items_tasks_and_splits(tmp_path: Path) -> None:
    _, test_arrays = write_cityscapes(tmp_path, train=10, test=3)
    data = create("cityscapes", root=tmp_path)
    assert list(data.tasks) == ["segmentation", "depth"] and data.input_shape == (3, 12, 16)
    segmentation, depth = data.tasks.values()
    assert isinstance(segmentation, SemanticSegmentation) and segmentation.num_classes == 7
    assert isinstance(depth, Depth) and depth.inverse is True
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 3)
    assert set(data.train.indices).isdisjoint(data.val.indices)
    image, targets = data.test[2]
    assert image.shape == (3, 12, 16) and set(targets) == {"segmentation", "depth"}
    assert torch.equal(targets["segmentation"], torch.from_numpy(test_arrays.label[2]).long())
    assert int(targets["segmentation"].max()) <= 6 and int(targets["segmentation"].min()) == -1
    assert torch.equal(targets["depth"][0], torch.from_numpy(test_arrays.depth[2][:, :, 0]))


def test_mtan_label_7_folder_is_found(tmp_path: Path) -> None:
    _, test_arrays = write_cityscapes(tmp_path, label_folder="label_7")
    data = cityscapes(tmp_path)
    assert data.test.folder.folders["label"] == tmp_path / "val" / "label_7"
    assert torch.equal(data.test[0][1]["segmentation"], torch.from_numpy(test_arrays.label[0]).long())
    with pytest.raises(DatasetFormatError, match=r"no train/label_19/ folder, which holds the targets of the task"):
        cityscapes(tmp_path, label_folder="label_19")


def test_training_augmentation_multiplies_inverse_depth_by_the_scale(tmp_path: Path) -> None:
    write_cityscapes(tmp_path)
    for path in (tmp_path / "train" / "depth").iterdir():
        np.save(path, np.full((12, 16, 1), 2.0, dtype=np.float32))
    data = cityscapes(tmp_path)
    data.train.generator = torch.Generator().manual_seed(0)
    seen = {round(float(data.train[i % len(data.train)][1]["depth"][0, 0, 0]), 4) for i in range(60)}
    assert seen == {2.0, 2.4, 3.0}  # 2 × {1.0, 1.2, 1.5}
    val_depth = {float(v) for v in data.val[0][1]["depth"].unique()}
    assert val_depth == {2.0}  # validation is not augmented


def test_label_outside_seven_classes_and_size_mismatch_are_named(tmp_path: Path) -> None:
    write_cityscapes(tmp_path)
    np.save(tmp_path / "train" / "label" / "4.npy", np.full((12, 16), 7, dtype=np.float32))
    data = cityscapes(tmp_path, augment=False)
    split = data.train if 4 in data.train.indices else data.val
    with pytest.raises(DatasetFormatError, match=r"train/label/4\.npy: label value 7 out of range; expected .* 6"):
        split[split.indices.index(4)]
    np.save(tmp_path / "train" / "label" / "4.npy", np.full((12, 16), 0.5, dtype=np.float32))
    with pytest.raises(DatasetFormatError, match=r"train/label/4\.npy: label has non-integer values"):
        split[split.indices.index(4)]
    other = tmp_path / "other"
    write_cityscapes(other)
    for modality in ("image", "label", "depth"):
        for path in (other / "val" / modality).iterdir():
            path.unlink()
    rng = np.random.default_rng(0)
    np.save(other / "val" / "image" / "0.npy", rng.random((8, 16, 3), dtype=np.float32))
    np.save(other / "val" / "label" / "0.npy", np.zeros((8, 16), dtype=np.float32))
    np.save(other / "val" / "depth" / "0.npy", np.ones((8, 16, 1), dtype=np.float32))
    with pytest.raises(DatasetFormatError, match=r"other/val: images are \(8, 16\); expected .*\(12, 16\)"):
        cityscapes(other)


def test_a_training_folder_of_one_image_cannot_be_split(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, train=1)
    with pytest.raises(DatasetFormatError, match=r"train: need at least 2 training images"):
        cityscapes(tmp_path)


def test_metric_averaging_option_reaches_the_depth_task(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, train=10, test=3)
    assert cityscapes(tmp_path, metric_averaging="batch").tasks["depth"].averaging == "batch"
    assert cityscapes(tmp_path).tasks["depth"].averaging == "split"
    with pytest.raises(ValueError, match=r"dataset 'cityscapes': metric_averaging: averaging must be one of"):
        cityscapes(tmp_path, metric_averaging=1)
