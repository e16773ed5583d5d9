"""The paper's setups train end to end by name: dataset files on disk → registry → model → loop → metrics.

Tiny fixtures in the exact on-disk layouts (32 × 32 images so the dense models' strides fit); one optimizer step per
run, so these check the wiring of loaders, task kinds, heads and the loop, not learning.
"""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from dataset_fixtures import write_celeba, write_cityscapes, write_nyuv2

from taskbalance.cli import main
from taskbalance.training import RunConfig, train


def tiny_run(dataset: str, root: Path, model: str, method: str = "uwso", **options: object) -> RunConfig:
    return RunConfig(
        dataset=dataset, dataset_options={"root": str(root), **options}, model=model, method=method,
        epochs=1, batch_size=2, eval_batch_size=4, max_steps_per_epoch=1,
    )


@pytest.mark.parametrize("model", ["segnet", "deeplabv3plus"])
def test_nyuv2_trains_with_the_dense_models(tmp_path: Path, model: str) -> None:
    write_nyuv2(tmp_path, train=6, test=3, size=(32, 32))
    result = train(tiny_run("nyuv2", tmp_path, model))
    assert result.tasks == ["segmentation", "depth", "normals"]
    metrics = result.epochs[0].test
    assert set(metrics) == {
        "segmentation/miou", "segmentation/pixel_acc", "depth/abs_err", "depth/rel_err", "normals/mean_angle",
        "normals/median_angle", "normals/within_11_25", "normals/within_22_5", "normals/within_30",
    }
    assert all(torch.isfinite(torch.tensor(list(metrics.values()))))
    assert len(result.step_weights[0]) == 3 and abs(sum(result.step_weights[0]) - 1) < 1e-5


def test_cityscapes_trains_with_inverse_depth(tmp_path: Path) -> None:
    write_cityscapes(tmp_path, train=6, test=3, size=(32, 32))
    result = train(tiny_run("cityscapes", tmp_path, "segnet", method="uw"))
    assert result.tasks == ["segmentation", "depth"]
    expected = {"segmentation/miou", "segmentation/pixel_acc", "depth/abs_err", "depth/rel_err"}
    assert set(result.epochs[0].val) == expected


def test_celeba_trains_forty_binary_tasks_with_resnet18(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    result = train(tiny_run("celeba", tmp_path, "resnet18", method="uwo"))
    assert len(result.tasks) == 40
    assert all(0.0 <= value <= 1.0 for value in result.epochs[0].test.values())


def test_train_command_reads_the_dataset_root_from_the_config(tmp_path: Path) -> None:
    write_nyuv2(tmp_path / "nyuv2", train=6, test=3, size=(32, 32))
    config = tmp_path / "nyuv2.toml"
    config.write_text(
        'dataset = "nyuv2"\nmodel = "segnet"\ntasks = ["depth"]\nepochs = 1\nbatch_size = 2\nmax_steps_per_epoch = 1\n'
        f'dataset_options = {{ root = "{tmp_path / "nyuv2"}", augment = false }}\n'
    )
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 0, result.output
    assert "depth/abs_err" in result.output and "segmentation" not in result.output


def test_missing_dataset_files_name_the_path(tmp_path: Path) -> None:
    config = tmp_path / "nyuv2.toml"
    config.write_text(f'dataset = "nyuv2"\nmodel = "segnet"\ndataset_options = {{ root = "{tmp_path / "nowhere"}" }}\n')
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 2
    assert "nyuv2.toml: dataset 'nyuv2'" in result.output and "nowhere" in result.output


def test_the_metric_conventions_reach_a_run_batch_averaging_and_celeba_f1(tmp_path: Path) -> None:
    write_nyuv2(tmp_path / "nyuv2", train=6, test=3, size=(32, 32))
    run = tiny_run("nyuv2", tmp_path / "nyuv2", "segnet", method="ew", augment=False).replace(tasks=["depth"])
    # The same weights (same seed and steps), evaluated three ways: a pixel mean over the split whatever the batch,
    # and a mean of per-batch means, which differs with the batch size.
    split = [train(run.replace(eval_batch_size=size)).epochs[0].test["depth/abs_err"] for size in (1, 4)]
    batch = [train(run.replace(eval_batch_size=size, dataset_options={**run.dataset_options,
                                                                      "metric_averaging": "batch"}))
             .epochs[0].test["depth/abs_err"] for size in (1, 4)]
    assert split[0] == pytest.approx(split[1], rel=1e-6) and batch[1] == pytest.approx(split[1], rel=1e-6)
    assert batch[0] != pytest.approx(split[0], rel=1e-6)  # per image: the images' valid-pixel counts differ

    write_celeba(tmp_path / "celeba")
    celeba = train(tiny_run("celeba", tmp_path / "celeba", "resnet18", method="ew", tasks=["Smiling", "Male"],
                            attribute_metrics=["f1"]))
    assert set(celeba.epochs[0].test) == {"Smiling/f1", "Male/f1"}
