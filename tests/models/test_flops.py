"""FLOP counts on the meta device (taskbalance.models.flops) and the dry run's compute in FLOPs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from taskbalance.cli import main
from taskbalance.models import create
from taskbalance.models.flops import forward_flops
from taskbalance.protocol.bench import plan
from taskbalance.protocol.presets import PRESETS, format_flops, plan_flops
from taskbalance.types import HeadSpec

HEADS = {"left": HeadSpec(10, dense=False), "depth": HeadSpec(1, dense=True, size=(9, 9))}


def hooked_flops(model: nn.Module, sample: torch.Tensor) -> int:
    """An independent count on real tensors: 2 FLOPs per multiply-add of every convolution and linear layer."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return total


def layers(model: nn.Module) -> Iterator[type]:
    return (type(m) for m in model.modules() if not list(m.children()))


@pytest.mark.parametrize("name", ["multilenet", "small_cnn"])
def test_the_meta_count_equals_a_count_of_every_product_on_real_tensors(name: str) -> None:
    model = create(name, heads=HEADS, in_channels=1)
    assert {nn.Conv2d, nn.Linear} <= set(layers(model))
    assert forward_flops(name, HEADS, (1, 36, 36)) == hooked_flops(model, torch.zeros(1, 1, 36, 36))


def test_a_fully_convolutional_model_costs_in_proportion_to_the_image_area() -> None:
    heads = {"segmentation": HeadSpec(7, dense=True), "depth": HeadSpec(1, dense=True)}
    small = forward_flops("segnet", heads, (3, 64, 64))
    assert forward_flops("segnet", heads, (3, 128, 64)) == 2 * small
    assert forward_flops("segnet", {"depth": heads["depth"]}, (3, 64, 64)) < small  # one head fewer


def test_an_unknown_model_option_raises_as_the_constructor_does() -> None:
    with pytest.raises(TypeError):
        forward_flops("multilenet", HEADS, (1, 36, 36), width=3)


def test_the_plan_counts_baselines_at_their_one_head_cost_and_three_passes_per_sample() -> None:
    preset = PRESETS["nyuv2-segnet"]
    spec = preset.spec(methods=["ew"], seeds=[0], lrs=[1e-3], run_changes={"epochs": 2})
    bench_plan = plan(spec)
    assert (bench_plan.stl_runs, bench_plan.runs) == (3, 4)
    one_head = sum(forward_flops("segnet", {t: preset.heads[t]}, preset.input_shape) for t in preset.heads)
    every_head = forward_flops("segnet", preset.heads, preset.input_shape)
    counted = plan_flops(bench_plan, spec, preset)
    assert counted.forward_per_sample == every_head
    # 636 training samples, 159 validation and 654 test samples evaluated after each of the 2 epochs.
    assert counted.training == pytest.approx(3 * 636 * 2 * (every_head + one_head))
    assert counted.evaluation == pytest.approx((159 + 654) * 2 * (every_head + one_head))
    capped = preset.spec(methods=["ew"], seeds=[0], lrs=[1e-3], run_changes={"epochs": 2, "max_steps_per_epoch": 5})
    capped_flops = plan_flops(plan(capped), capped, preset)
    assert capped_flops.training == pytest.approx(counted.training * 5 * 8 / 636)
    assert capped_flops.evaluation == counted.evaluation  # evaluation covers the whole splits


def test_a_task_the_preset_does_not_know_is_named() -> None:
    spec = PRESETS["cityscapes-segnet"].spec(["segmentation", "albedo"], methods=["ew"])
    with pytest.raises(ValueError, match="albedo"):
        plan_flops(plan(spec), spec, PRESETS["cityscapes-segnet"])


def test_the_dry_run_of_a_paper_preset_gives_its_flops_without_reading_the_weights_file() -> None:
    args = ["bench", "--preset", "nyuv2-deeplabv3plus", "--dry-run", "--model-option", "pretrained=/nowhere/r50.pth"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "FLOPs: 294 GFLOP per sample forward" in result.output
    assert "TFLOP/s sustained" in result.output  # no measured epoch time: hours at the nominal rate


def test_the_dry_run_says_why_it_has_no_flops_for_another_dataset() -> None:
    result = CliRunner().invoke(main, ["bench", "--preset", "nyuv2-segnet", "--dataset", "multifashion", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "FLOPs: not counted (the input size of another dataset" in result.output


def test_a_timed_preset_gives_flops_without_the_nominal_rate() -> None:
    result = CliRunner().invoke(main, ["bench", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "MFLOP per sample forward" in result.output and "TFLOP/s sustained" not in result.output


def test_the_table_in_the_protocol_docs_is_what_the_code_counts() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    for name, preset in PRESETS.items():
        if name == "full":
            continue
        spec = preset.spec()
        counted = plan_flops(plan(spec), spec, preset)
        row = (f"| `{name}` | {format_flops(counted.forward_per_sample)} | {format_flops(counted.training)} | "
               f"{format_flops(counted.evaluation)} |")
        assert row in docs, row
