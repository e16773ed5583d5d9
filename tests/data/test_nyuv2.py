"""NYUv2 in MTAN's layout: items, splits, task wiring and the errors for missing or malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import write_nyuv2
from torch.utils.data import DataLoader

from taskbalance.data import DATASETS, DatasetFormatError, create
from taskbalance.data.nyuv2 import nyuv2
from taskbalance.tasks import Depth, SemanticSegmentation, SurfaceNormals


def test_items_have_the_documented_shapes_dtypes_and_values(tmp_path: Path) -> None:
    train_arrays, test_arrays = write_nyuv2(tmp_path)
    data = nyuv2(tmp_path, augment=False)
    assert data.name == "nyuv2" and data.input_shape == (3, 12, 16)
    image, targets = data.test[1]
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert torch.equal(image, torch.from_numpy(test_arrays.image[1]).permute(2, 0, 1))
    assert set(targets) == {"segmentation", "depth", "normals"}
    assert targets["segmentation"].dtype == torch.int64 and targets["segmentation"].shape == (12, 16)
    assert torch.equal(targets["segmentation"], torch.from_numpy(test_arrays.label[1]).long())
    assert (targets["segmentation"] == -1).any()
    assert targets["depth"].dtype == torch.float32 and targets["depth"].shape == (1, 12, 16)
    assert torch.equal(targets["depth"][0], torch.from_numpy(test_arrays.depth[1][:, :, 0]))
    assert targets["normals"].dtype == torch.float32 and targets["normals"].shape == (3, 12, 16)
    assert torch.equal(targets["normals"], torch.from_numpy(test_arrays.normal[1]).permute(2, 0, 1))
    # Validation items come unaugmented from the training folder.
    val_index = data.val.indices[0]
    val_image, _ = data.val[0]
    assert torch.equal(val_image, torch.from_numpy(train_arrays.image[val_index]).permute(2, 0, 1))


def test_depth_stored_without_channel_axis_gets_one(tmp_path: Path) -> None:
    _, test_arrays = write_nyuv2(tmp_path, depth_channel=False)
    _, targets = nyuv2(tmp_path).test[0]
    assert targets["depth"].shape == (1, 12, 16)
    assert torch.equal(targets["depth"][0], torch.from_numpy(test_arrays.depth[0]))


def test_val_is_carved_from_train_and_the_val_folder_is_the_test_split(tmp_path: Path) -> None:
    write_nyuv2(tmp_path, train=10, test=4)
    data = nyuv2(tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 4)
    assert set(data.train.indices).isdisjoint(data.val.indices)
    assert sorted(data.train.indices + data.val.indices) == list(range(10))
    assert data.test.indices == [0, 1, 2, 3] and data.test.folder.root == tmp_path / "val"
    assert nyuv2(tmp_path).val.indices == data.val.indices  # deterministic
    other_seeds = {tuple(nyuv2(tmp_path, val_seed=seed).val.indices) for seed in range(1, 6)}
    assert other_seeds - {tuple(data.val.indices)}  # the seed matters


def test_augmentation_only_on_the_train_split(tmp_path: Path) -> None:
    write_nyuv2(tmp_path)
    data = nyuv2(tmp_path)
    assert data.train.augmentation is not None
    assert data.val.augmentation is None and data.test.augmentation is None
    assert nyuv2(tmp_path, augment=False).train.augmentation is None
    torch.manual_seed(0)
    image, targets = data.train[0]
    assert image.shape == (3, 12, 16) and targets["segmentation"].dtype == torch.int64
    normals = targets["normals"]
    norms = normals.norm(dim=0)
    assert torch.allclose(norms[norms > 0], torch.tensor(1.0), atol=1e-5)


def test_task_wiring_and_a_batched_loss(tmp_path: Path) -> None:
    write_nyuv2(tmp_path)
    data = create("nyuv2", root=str(tmp_path))
    assert "nyuv2" in DATASETS
    assert list(data.tasks) == ["segmentation", "depth", "normals"]
    segmentation, depth, normals = data.tasks.values()
    assert isinstance(segmentation, SemanticSegmentation) and segmentation.num_classes == 13
    assert segmentation.ignore_index == -1
    assert isinstance(depth, Depth) and depth.inverse is False
    assert isinstance(normals, SurfaceNormals)
    images, targets = next(iter(DataLoader(data.test, batch_size=3)))
    assert images.shape == (3, 3, 12, 16)
    predictions = {
        "segmentation": torch.zeros(3, 13, 12, 16),
        "depth": torch.zeros(3, 1, 12, 16),
        "normals": torch.ones(3, 3, 12, 16),
    }
    for name, task in data.tasks.items():
        assert torch.isfinite(task.loss(predictions[name], targets[name])), name
    # Zero depth prediction: the L1 loss is the mean of the valid target depths.
    valid = targets["depth"][targets["depth"] != 0]
    assert torch.allclose(depth.loss(predictions["depth"], targets["depth"]), valid.mean())


def test_task_subset_reads_only_its_folders(tmp_path: Path) -> None:
    write_nyuv2(tmp_path)
    for split in ("train", "val"):
        for path in (tmp_path / split / "normal").iterdir():
            path.unlink()
        (tmp_path / split / "normal").rmdir()
    data = nyuv2(tmp_path, tasks=["depth", "segmentation"])
    assert list(data.tasks) == ["depth", "segmentation"]
    assert set(data.test[0][1]) == {"depth", "segmentation"}
    with pytest.raises(DatasetFormatError, match=r"no train/normal/ folder, which holds the targets of the task .norm"):
        nyuv2(tmp_path)
    with pytest.raises(KeyError, match=r"no task\(s\) \['edges'\]"):
        nyuv2(tmp_path, tasks=["edges"])
    with pytest.raises(ValueError, match="non-empty list of distinct names"):
        nyuv2(tmp_path, tasks=["depth", "depth"])
    with pytest.raises(TypeError, match="got the string 'depth'"):
        nyuv2(tmp_path, tasks="depth")


FILE_DAMAGE = {
    "missing modality file": (lambda root: (root / "train" / "depth" / "5.npy").unlink(),
                              r"train/depth/5\.npy: missing"),
    "label without an image": (lambda root: np.save(root / "val" / "label" / "9.npy", np.zeros((12, 16), np.float32)),
                               r"val/label/9\.npy: no matching image"),
    "foreign file": (lambda root: (root / "val" / "image" / "notes.txt").write_text("x"),
                     r"val/image/notes\.txt: unexpected file"),
    "misshapen label": (lambda root: np.save(root / "train" / "label" / "3.npy", np.zeros((12, 15), np.float32)),
                        r"train/label/3\.npy: label has shape \(12, 15\).*\(12, 16\)"),
}


@pytest.mark.parametrize("damage", list(FILE_DAMAGE))
def test_a_missing_extra_foreign_or_misshapen_file_is_named(tmp_path: Path, damage: str) -> None:
    write_nyuv2(tmp_path)
    change, message = FILE_DAMAGE[damage]
    change(tmp_path)
    with pytest.raises(DatasetFormatError, match=message):
        nyuv2(tmp_path)


def test_bad_values_are_named_when_the_item_is_read(tmp_path: Path) -> None:
    write_nyuv2(tmp_path)
    np.save(tmp_path / "val" / "label" / "0.npy", np.full((12, 16), 13, dtype=np.float32))
    np.save(tmp_path / "val" / "image" / "1.npy", np.full((12, 16, 3), 255.0, dtype=np.float32))
    np.save(tmp_path / "val" / "depth" / "2.npy", np.full((12, 16, 1), np.nan, dtype=np.float32))
    data = nyuv2(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"val/label/0\.npy: label value 13 out of range; expected .* 12"):
        data.test[0]
    with pytest.raises(DatasetFormatError, match=r"val/image/1\.npy: image values span \[255.0, 255.0\]"):
        data.test[1]
    with pytest.raises(DatasetFormatError, match=r"val/depth/2\.npy: depth has NaN"):
        data.test[2]


def test_missing_root_and_wrong_image_channels(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"nowhere: missing dataset folder"):
        nyuv2(tmp_path / "nowhere")
    write_nyuv2(tmp_path)
    np.save(tmp_path / "train" / "image" / "0.npy", np.zeros((12, 16, 4), dtype=np.float32))
    with pytest.raises(DatasetFormatError, match=r"train/image/0\.npy: .*expected an H × W × 3 image"):
        nyuv2(tmp_path)
    assert issubclass(DatasetFormatError, ValueError)


def test_metric_averaging_option_reaches_depth_and_normals_and_is_checked_by_name(tmp_path: Path) -> None:
    from taskbalance.data import dataset_tasks

    write_nyuv2(tmp_path)
    data = nyuv2(tmp_path, metric_averaging="batch")
    listed = dataset_tasks("nyuv2", root=tmp_path, metric_averaging="batch")
    for tasks in (data.tasks, listed):
        assert (tasks["depth"].averaging, tasks["normals"].averaging) == ("batch", "batch")
        assert type(tasks["depth"].meter()).__name__ == "BatchMeanMeter"
    assert type(nyuv2(tmp_path).tasks["depth"].meter()).__name__ == "DepthMeter"
    for build in (nyuv2, lambda root, **kw: dataset_tasks("nyuv2", root=root, **kw)):
        with pytest.raises(ValueError, match=r"dataset 'nyuv2': metric_averaging: averaging must be one of"):
            build(tmp_path, metric_averaging="image")
