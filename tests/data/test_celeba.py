"""CelebA from its official files: 40 binary tasks, the official partition, 64 × 64 images and file errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fixtures import write_celeba
from PIL import Image
from torch.utils.data import DataLoader

from taskbalance.data import DatasetFormatError, create, dataset_tasks
from taskbalance.data.celeba import celeba
from taskbalance.data.celeba_files import CELEBA_ATTRIBUTES
from taskbalance.tasks import BinaryAttribute


def test_splits_follow_the_partition_file_and_targets_map_minus_one_to_zero(tmp_path: Path) -> None:
    files = write_celeba(tmp_path, partition=(0, 2, 0, 1, 0, 2, 1))
    data = celeba(tmp_path)
    assert data.train.file_names == ["000001.jpg", "000003.jpg", "000005.jpg"]
    assert data.val.file_names == ["000004.jpg", "000007.jpg"]
    assert data.test.file_names == ["000002.jpg", "000006.jpg"]
    _, targets = data.val[1]  # 000007.jpg, row 6 of the file
    assert list(targets) == list(CELEBA_ATTRIBUTES)
    for j, name in enumerate(CELEBA_ATTRIBUTES):
        assert targets[name].shape == () and targets[name].dtype == torch.float32
        assert float(targets[name]) == (1.0 if files.signs[6, j] == 1 else 0.0)


def test_images_are_64_pixel_squares_in_unit_range(tmp_path: Path) -> None:
    files = write_celeba(tmp_path)
    data = create("celeba", root=tmp_path)
    assert data.input_shape == (3, 64, 64)
    image, _ = data.train[2]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    expected = torch.tensor(files.colours[2], dtype=torch.float32) / 255
    # A flat colour survives JPEG and bilinear resizing up to a few grey levels.
    assert torch.allclose(image.mean(dim=(1, 2)), expected, atol=3 / 255)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert celeba(tmp_path, image_size=32).train[0][0].shape == (3, 32, 32)


def test_center_crop_keeps_the_central_square(tmp_path: Path) -> None:
    write_celeba(tmp_path, partition=(0, 1, 2))
    striped = np.zeros((32, 16, 3), dtype=np.uint8)  # 16 wide, 32 tall: red / green / blue bands
    striped[:8] = (255, 0, 0)
    striped[8:24] = (0, 255, 0)
    striped[24:] = (0, 0, 255)
    Image.fromarray(striped).save(tmp_path / "img_align_celeba" / "000001.jpg", quality=100, subsampling=0)
    cropped, _ = celeba(tmp_path, center_crop=True).train[0]
    # The central 16 × 16 square is rows 8..23: all green.
    assert float(cropped[1].min()) > 0.9 and float(cropped[0].max()) < 0.1 and float(cropped[2].max()) < 0.1
    whole, _ = celeba(tmp_path).train[0]
    assert float(whole[0, 0].mean()) > 0.9 and float(whole[2, -1].mean()) > 0.9  # red top row, blue bottom row


def test_forty_binary_tasks_subset_and_batched_loss(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    data = celeba(tmp_path)
    assert len(data.tasks) == 40 and list(data.tasks) == list(CELEBA_ATTRIBUTES)
    assert all(isinstance(task, BinaryAttribute) and task.name == name for name, task in data.tasks.items())
    subset = celeba(tmp_path, tasks=["Smiling", "Male"])
    assert list(subset.tasks) == ["Smiling", "Male"]
    images, targets = next(iter(DataLoader(subset.train, batch_size=3)))
    assert images.shape == (3, 3, 64, 64) and set(targets) == {"Smiling", "Male"}
    assert targets["Smiling"].shape == (3,)
    # Zero logits: BCE is log 2 whatever the labels.
    loss = subset.tasks["Smiling"].loss(torch.zeros(3), targets["Smiling"])
    assert torch.allclose(loss, torch.tensor(np.log(2.0), dtype=torch.float32))
    with pytest.raises(KeyError, match="no task"):
        celeba(tmp_path, tasks=["Smiling", "Wings"])


def _rewrite_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_attribute_file_errors_name_the_path_and_line(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    attributes = tmp_path / "list_attr_celeba.txt"
    original = attributes.read_text()
    _rewrite_line(attributes, 4, "000002.jpg " + " ".join(["1"] * 39))
    with pytest.raises(DatasetFormatError, match=r"list_attr_celeba\.txt:4: 40 fields; expected an image name and 40"):
        celeba(tmp_path)
    attributes.write_text(original)
    _rewrite_line(attributes, 5, "000003.jpg 0 " + " ".join(["1"] * 39))
    with pytest.raises(DatasetFormatError, match=r"txt:5: attribute '5_o_Clock_Shadow' of 000003\.jpg is '0'"):
        celeba(tmp_path)
    attributes.write_text(original)
    _rewrite_line(attributes, 1, "8")
    with pytest.raises(DatasetFormatError, match=r"list_attr_celeba\.txt: 7 image lines; expected 8"):
        celeba(tmp_path)
    attributes.unlink()
    with pytest.raises(DatasetFormatError, match=r"list_attr_celeba\.txt: missing"):
        celeba(tmp_path)


def test_partition_file_errors_name_the_path_and_line(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    partition = tmp_path / "list_eval_partition.txt"
    original = partition.read_text()
    _rewrite_line(partition, 3, "000003.jpg 3")
    with pytest.raises(DatasetFormatError, match=r"list_eval_partition\.txt:3: partition '3' of 000003\.jpg"):
        celeba(tmp_path)
    partition.write_text("".join(original.splitlines(keepends=True)[:-1]))
    with pytest.raises(DatasetFormatError, match=r"list_eval_partition\.txt: no partition for 000007\.jpg"):
        celeba(tmp_path)


def test_missing_and_unreadable_images_are_named(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    (tmp_path / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(DatasetFormatError, match=r"img_align_celeba/000004\.jpg: missing"):
        celeba(tmp_path)
    (tmp_path / "img_align_celeba" / "000004.jpg").write_bytes(b"not a jpeg")
    data = celeba(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"img_align_celeba/000004\.jpg: not a readable image"):
        data.val[0]


@pytest.mark.parametrize(("option", "value"), [("image_size", 16.0), ("image_size", 0), ("image_size", True),
                                               ("center_crop", "yes")])
def test_image_options_of_the_wrong_type_are_refused_by_name_before_any_image_is_read(
    tmp_path: Path, option: str, value: object
) -> None:
    write_celeba(tmp_path)
    for build in (celeba, lambda root, **kw: dataset_tasks("celeba", root=root, **kw)):
        with pytest.raises(ValueError, match=f"dataset 'celeba': {option} must be"):
            build(tmp_path, **{option: value})


def test_attribute_metrics_option_reaches_every_task_and_is_checked_by_name(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    data = celeba(tmp_path, tasks=["Smiling", "Male"], attribute_metrics=["accuracy", "f1"])
    listed = dataset_tasks("celeba", root=tmp_path, tasks=["Smiling"], attribute_metrics=["f1"])
    assert [[m.name for m in task.metrics] for task in data.tasks.values()] == [["accuracy", "f1"]] * 2
    assert [m.name for m in listed["Smiling"].metrics] == ["f1"]
    assert [m.name for m in celeba(tmp_path, tasks=["Male"]).tasks["Male"].metrics] == ["accuracy"]
    for build in (celeba, lambda root, **kw: dataset_tasks("celeba", root=root, **kw)):
        with pytest.raises(ValueError, match=r"dataset 'celeba': attribute_metrics: unknown metric\(s\) 'auc'"):
            build(tmp_path, attribute_metrics=["auc"])
