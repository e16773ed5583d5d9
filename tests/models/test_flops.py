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
    counted = forward_flops(name, HEADS, (1, 36, 36))
    assert counted.total == hooked_flops(model, torch.zeros(1, 1, 36, 36))
    assert counted.shared == hooked_flops(model.encoder, torch.zeros(1, 1, 36, 36)) > 0 and counted.heads > 0


def test_a_fully_convolutional_model_costs_in_proportion_to_the_image_area() -> None:
    heads = {"segmentation": HeadSpec(7, dense=True), "depth": HeadSpec(1, dense=True)}
    small = forward_flops("segnet", heads, (3, 64, 64))
    assert forward_flops("segnet", heads, (3, 128, 64)).total == 2 * small.total
    one_head = forward_flops("segnet", {"depth": heads["depth"]}, (3, 64, 64))
    assert one_head.shared == small.shared and one_head.heads < small.heads


def test_an_unknown_model_option_raises_as_the_constructor_does() -> None:
    with pytest.raises(TypeError):
        forward_flops("multilenet", HEADS, (1, 36, 36), width=3)


def test_the_plan_counts_baselines_at_their_one_head_cost_and_three_passes_per_sample() -> None:
    preset = PRESETS["nyuv2-segnet"]
    spec = preset.spec(methods=["ew"], seeds=[0], lrs=[1e-3], run_changes={"epochs": 2})
    bench_plan = plan(spec)
    assert (bench_plan.stl_runs, bench_plan.runs) == (3, 4)
    one_head = sum(forward_flops("segnet", {t: preset.heads[t]}, preset.input_shape).total for t in preset.heads)
    every_head = forward_flops("segnet", preset.heads, preset.input_shape).total
    counted = plan_flops(bench_plan, spec, preset)
    assert counted.forward_per_sample == every_head
    # 636 training samples, 159 validation and 654 test samples evaluated after each of the 2 epochs.
    assert counted.training == pytest.approx(3 * 636 * 2 * (every_head + one_head))
    assert counted.evaluation == pytest.approx((159 + 654) * 2 * (every_head + one_head))
    capped = preset.spec(methods=["ew"], seeds=[0], lrs=[1e-3], run_changes={"epochs": 2, "max_steps_per_epoch": 5})
    capped_flops = plan_flops(plan(capped), capped, preset)
    assert capped_flops.training == pytest.approx(counted.training * 5 * 8 / 636)
    assert capped_flops.evaluation == counted.evaluation  # evaluation covers the whole splits


def test_each_method_s_training_step_is_counted_at_its_own_passes() -> None:
    preset = PRESETS["cityscapes-segnet"]
    methods_ = ["ew", "pcgrad", "mgda_ub", "famo"]
    spec = preset.spec(methods=methods_, seeds=[0], lrs=[1e-3], run_changes={"epochs": 1})
    counted = plan_flops(plan(spec), spec, preset)
    f = forward_flops("segnet", preset.heads, preset.input_shape)
    # PCGrad backpropagates through the encoder once per task (2 tasks); MGDA-UB (representation mode) once; FAMO
    # runs a second forward pass to measure the batch after the step.
    assert counted.step_cost == pytest.approx({
        "ew": 1.0, "pcgrad": (f.total + 2 * (2 * f.shared + f.heads)) / (3 * f.total), "mgda_ub": 1.0,
        "famo": 4 / 3,
    })
    ew_only = preset.spec(methods=["ew"], seeds=[0], lrs=[1e-3], run_changes={"epochs": 1})
    stl_and_ew = plan_flops(plan(ew_only), ew_only, preset).training
    loss_weighting_run = 3 * f.total * 2380
    others = counted.step_cost["pcgrad"] + counted.step_cost["mgda_ub"] + counted.step_cost["famo"]
    assert counted.training == pytest.approx(stl_and_ew + loss_weighting_run * others)


def test_a_gradient_method_in_representation_mode_costs_a_loss_weighting_s_step() -> None:
    preset = PRESETS["nyuv2-segnet"]
    spec = preset.spec(methods=["pcgrad"], method_options={"pcgrad": {"mode": "representation"}}, seeds=[0],
                       lrs=[1e-3])
    assert plan_flops(plan(spec), spec, preset).step_cost == {"pcgrad": 1.0}


def test_famo_measuring_consecutive_batches_needs_no_second_forward_pass() -> None:
    from taskbalance.method import StepPasses
    from taskbalance.weighting import FAMO

    assert FAMO.step_passes(3, {"same_batch": False}) == StepPasses() != FAMO.step_passes(3, {})


def test_nash_mtl_reusing_alpha_counts_one_encoder_backward_on_the_steps_between_solves() -> None:
    from taskbalance.aggregation import NashMTL
    from taskbalance.method import StepPasses

    assert NashMTL.step_passes(3, {}) == StepPasses(encoder_backward=3)
    assert NashMTL.step_passes(3, {"update_weights_every": 4}) == StepPasses(encoder_backward=1.5)
    assert NashMTL.step_passes(3, {"update_weights_every": 4, "mode": "representation"}) == StepPasses()
    assert NashMTL.step_passes(3, {"update_weights_every": 0}) == StepPasses(encoder_backward=3)  # refused later


def test_a_task_the_preset_does_not_know_is_named() -> None:
    spec = PRESETS["cityscapes-segnet"].spec(["segmentation", "albedo"], methods=["ew"])
    with pytest.raises(ValueError, match="albedo"):
        plan_flops(plan(spec), spec, PRESETS["cityscapes-segnet"])


def test_the_dry_run_of_a_paper_preset_gives_its_flops_without_reading_the_weights_file() -> None:
    args = ["bench", "--preset", "nyuv2-deeplabv3plus", "--dry-run", "--model-option", "pretrained=/nowhere/r50.pth"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "FLOPs: 294 GFLOP per sample forward" in result.output
    assert "h at 100 TFLOP/s" in result.output  # no measured epoch time: hours at the nominal rate


def test_the_dry_run_says_why_it_has_no_flops_for_another_dataset() -> None:
    result = CliRunner().invoke(main, ["bench", "--preset", "nyuv2-segnet", "--dataset", "multifashion", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "FLOPs: not counted (the input size of another dataset" in result.output


def test_a_timed_preset_gives_flops_without_the_nominal_rate() -> None:
    result = CliRunner().invoke(main, ["bench", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "MFLOP per sample forward" in result.output and "TFLOP/s" not in result.output


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
    spec = PRESETS["nyuv2-segnet"].spec(methods=["pcgrad"], seeds=[0], lrs=[1e-3])
    pcgrad = plan_flops(plan(spec), spec, PRESETS["nyuv2-segnet"]).step_cost["pcgrad"]
    assert f"PCGrad on NYUv2's SegNet: {pcgrad:.2f}×" in " ".join(docs.split())


def test_the_flops_table_in_the_models_docs_is_what_the_code_counts() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "models.md").read_text()
    ny, cs, ce = PRESETS["nyuv2-segnet"], PRESETS["cityscapes-segnet"], PRESETS["celeba-resnet18"]
    rows = [("segnet", ny, {}, ""), ("segnet", cs, {}, ""), ("mtan", ny, {}, ""), ("mtan", cs, {}, ""),
            ("deeplabv3plus", ny, {}, ", os 8"), ("deeplabv3plus", cs, {}, ", os 8"),
            ("deeplabv3plus", cs, {"output_stride": 16}, ", os 16"), ("resnet18", ce, {}, ""),
            ("resnet18", ce, {"stem": "cifar"}, ", stem cifar")]
    for model, preset, options, variant in rows:
        f = forward_flops(model, preset.heads, preset.input_shape, **options)
        row = (f"| {model}{variant} | {'×'.join(map(str, preset.input_shape))} ({{}}, {len(preset.heads)} heads) | "
               f"{format_flops(f.total)} | {format_flops(f.shared)} | {format_flops(f.heads)} |")
        dataset = {"nyuv2": "NYUv2", "cityscapes": "Cityscapes", "celeba": "CelebA"}[preset.run.dataset]
        assert row.format(dataset) in docs, row.format(dataset)
