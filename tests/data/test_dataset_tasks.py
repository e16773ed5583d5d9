"""Each dataset tells its tasks without loading: the same tasks as the built dataset, options checked by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_fixtures import write_celeba, write_cityscapes, write_nyuv2

from taskbalance.data import (
    DATASET_TASKS,
    DATASETS,
    DatasetFormatError,
    DatasetOptionError,
    MultiTaskData,
    check_options,
    create,
    dataset_tasks,
)
from taskbalance.data.celeba_files import ATTRIBUTE_FILE
from taskbalance.tasks.base import Task


def describe(tasks: dict[str, Task]) -> list[tuple[str, str, str]]:
    return [(name, type(task).__name__, repr(vars(task))) for name, task in tasks.items()]


def test_every_shipped_dataset_registers_a_task_list() -> None:
    shipped = ["celeba", "cityscapes", "multifashion", "nyuv2"]
    assert set(shipped) <= set(DATASETS.names()) and set(DATASET_TASKS.names()) == set(shipped)


def test_a_dataset_without_a_task_list_is_built_to_learn_its_tasks() -> None:
    built: list[int] = []

    @DATASETS.register("tasks_test_built")
    def tasks_test_built(*, size: int = 4) -> MultiTaskData:
        built.append(size)
        data = create("multifashion", num_train=size, num_val=size, num_test=size)
        return MultiTaskData("tasks_test_built", data.train, data.val, data.test, data.tasks, data.input_shape)

    assert list(dataset_tasks("tasks_test_built", size=2)) == ["left", "right", "depth"] and built == [2]


@pytest.mark.parametrize("tasks", [None, ["depth", "left"]])
def test_multifashion_task_list_equals_the_built_datasets(tasks: list[str] | None) -> None:
    options = {"num_train": 8, "num_val": 4, "num_test": 4, "tasks": tasks}
    assert describe(dataset_tasks("multifashion", **options)) == describe(create("multifashion", **options).tasks)


@pytest.mark.parametrize("name", ["nyuv2", "cityscapes", "celeba"])
def test_on_disk_task_lists_equal_the_built_datasets(tmp_path: Path, name: str) -> None:
    writers = {"nyuv2": write_nyuv2, "cityscapes": write_cityscapes, "celeba": write_celeba}
    writers[name](tmp_path)
    built = create(name, root=tmp_path).tasks
    assert describe(dataset_tasks(name, root=tmp_path)) == describe(built)
    first_two = list(built)[:2][::-1]
    assert list(dataset_tasks(name, root=tmp_path, tasks=first_two)) == first_two


def test_celeba_task_list_reads_only_the_header(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    path = tmp_path / ATTRIBUTE_FILE
    header = path.read_text().splitlines()[:2]
    path.write_text("\n".join([*header, "this line is not read"]) + "\n")
    assert list(dataset_tasks("celeba", root=tmp_path)) == header[1].split()
    with pytest.raises(DatasetFormatError, match=f"{ATTRIBUTE_FILE}:3: 5 fields"):
        create("celeba", root=tmp_path)  # the builder does read it


def test_unknown_missing_and_bad_options_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetOptionError, match="dataset 'multifashion' has no option 'size'") as unknown:
        dataset_tasks("multifashion", size=3)
    assert unknown.value.option == "size"
    with pytest.raises(DatasetOptionError, match="dataset 'nyuv2' needs the option 'root'") as missing:
        dataset_tasks("nyuv2")
    assert missing.value.option == "root"
    with pytest.raises(DatasetFormatError, match="missing dataset folder"):
        dataset_tasks("cityscapes", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="num_val must be an integer ≥ 1, got 0"):
        dataset_tasks("multifashion", num_val=0)
    with pytest.raises(KeyError, match="no task"):
        dataset_tasks("multifashion", tasks=["left", "colour"])
    with pytest.raises(KeyError, match="unknown dataset 'mnist'"):
        check_options("mnist", {})


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_folder_without_mtan_s_layout_is_refused_before_any_file_is_read(tmp_path: Path, split: str) -> None:
    write_nyuv2(tmp_path / "nyu", train=2, test=1)
    (tmp_path / "nyu" / split / "image").rename(tmp_path / "nyu" / split / "images")
    with pytest.raises(DatasetFormatError, match=f"no {split}/image/ folder.*sub-folders here: \\['train', 'val'\\]"):
        dataset_tasks("nyuv2", root=tmp_path / "nyu")


@pytest.mark.parametrize("missing", ["list_eval_partition.txt", "img_align_celeba"])
def test_celeba_without_its_partition_file_or_images_is_refused_by_name(tmp_path: Path, missing: str) -> None:
    write_celeba(tmp_path)
    target = tmp_path / missing
    if target.is_dir():
        for image in target.iterdir():
            image.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(DatasetFormatError, match=f"{missing}: missing"):
        dataset_tasks("celeba", root=tmp_path)


def test_bench_on_a_folder_without_the_dataset_s_layout_fails_before_any_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from taskbalance.cli import main

    (tmp_path / "nyu" / "images").mkdir(parents=True)  # e.g. a folder one level too high
    result = CliRunner().invoke(main, ["bench", "--dataset", "nyuv2", "--data-root", str(tmp_path / "nyu"),
                                       "--methods", "ew", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no train/image/ folder" in result.output and "images" in result.output
    assert not (tmp_path / "b").exists()


def test_a_partial_copy_missing_a_chosen_task_s_folder_is_refused_before_any_run(tmp_path: Path) -> None:
    write_nyuv2(tmp_path / "nyu", train=2, test=1)
    (tmp_path / "nyu" / "val" / "depth").rename(tmp_path / "nyu" / "val" / "depth_old")
    with pytest.raises(DatasetFormatError, match="no val/depth/ folder, which holds the targets of the task 'depth'"):
        dataset_tasks("nyuv2", root=tmp_path / "nyu")
    # A task that does not need the folder is fine without it.
    assert list(dataset_tasks("nyuv2", root=tmp_path / "nyu", tasks=["segmentation", "normals"])) == [
        "segmentation", "normals"]
