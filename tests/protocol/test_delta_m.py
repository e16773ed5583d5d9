"""Δm (all-metrics and per-task variants) on numbers worked out by hand, and its input checks."""

import math

import pytest

from taskbalance.protocol.delta_m import delta_m, delta_m_per_task
from taskbalance.tasks import Depth, SemanticSegmentation, SurfaceNormals

# Baseline B, model M and the signed relative change (−1)^h·(M − B)/B·100 of each metric:
#   seg/miou        ↑  B 0.40  M 0.42  → −5
#   seg/pixel_acc   ↑  B 0.50  M 0.45  → +10
#   depth/abs_err   ↓  B 0.80  M 0.60  → −25
#   depth/rel_err   ↓  B 0.25  M 0.30  → +20
#   normal/mean     ↓  B 20    M 22    → +10
BASELINE = {"seg/miou": 0.40, "seg/pixel_acc": 0.50, "depth/abs_err": 0.80, "depth/rel_err": 0.25, "normal/mean": 20.0}
MODEL = {"seg/miou": 0.42, "seg/pixel_acc": 0.45, "depth/abs_err": 0.60, "depth/rel_err": 0.30, "normal/mean": 22.0}
HIGHER = {"seg/miou": True, "seg/pixel_acc": True, "depth/abs_err": False, "depth/rel_err": False, "normal/mean": False}
GROUPS = {"seg": ["seg/miou", "seg/pixel_acc"], "depth": ["depth/abs_err", "depth/rel_err"], "normal": ["normal/mean"]}


def test_all_metrics_delta_m_by_hand() -> None:
    assert delta_m(MODEL, BASELINE, HIGHER) == pytest.approx((-5 + 10 - 25 + 20 + 10) / 5)


def test_per_task_delta_m_by_hand() -> None:
    # seg (−5 + 10)/2 = 2.5, depth (−25 + 20)/2 = −2.5, normal 10 → (2.5 − 2.5 + 10)/3
    assert delta_m_per_task(MODEL, BASELINE, HIGHER, GROUPS) == pytest.approx(10 / 3)


def test_improvement_is_negative_and_equality_is_zero() -> None:
    better = {"acc": 0.9, "err": 0.1}
    baseline = {"acc": 0.8, "err": 0.2}
    higher = {"acc": True, "err": False}
    # acc: −(0.1/0.8)·100 = −12.5; err: (−0.1/0.2)·100 = −50
    assert delta_m(better, baseline, higher) == pytest.approx(-31.25)
    assert delta_m(baseline, baseline, higher) == 0.0
    assert delta_m(baseline, better, higher) > 0


def test_only_baseline_metrics_count_and_scale_of_a_metric_does_not_matter() -> None:
    with_extra = {**MODEL, "seg/unused": 123.0}
    assert delta_m(with_extra, BASELINE, {**HIGHER, "seg/unused": True}) == pytest.approx(2.0)
    percent = {k: v * 100 for k, v in MODEL.items()}
    percent_baseline = {k: v * 100 for k, v in BASELINE.items()}
    assert delta_m(percent, percent_baseline, HIGHER) == pytest.approx(2.0)


def test_variants_agree_with_one_metric_per_task() -> None:
    metrics, baseline = {"a/x": 3.0, "b/y": 1.0}, {"a/x": 2.0, "b/y": 4.0}
    higher = {"a/x": True, "b/y": False}
    groups = {"a": ["a/x"], "b": ["b/y"]}
    # a: −50, b: −75
    assert delta_m(metrics, baseline, higher) == pytest.approx(-62.5)
    assert delta_m_per_task(metrics, baseline, higher, groups) == pytest.approx(-62.5)


def test_directions_taken_from_the_task_kinds() -> None:
    tasks = [SemanticSegmentation("seg", num_classes=13), Depth("depth"), SurfaceNormals("normal")]
    higher = {f"{t.name}/{m.name}": m.higher_is_better for t in tasks for m in t.metrics}
    baseline = dict.fromkeys(higher, 0.5)
    # ↑: miou, pixel_acc, within_11_25, within_22_5, within_30; ↓: abs_err, rel_err, mean_angle, median_angle.
    assert sorted(higher.values()) == [False] * 4 + [True] * 5
    # Every metric moves by +0.05 (10 % of its baseline): better for the 5 ↑ metrics, worse for the 4 ↓ ones.
    moved = dict.fromkeys(higher, 0.55)
    assert delta_m(moved, baseline, higher) == pytest.approx((5 * -10 + 4 * 10) / 9)


def test_missing_metric_or_direction_is_named() -> None:
    with pytest.raises(ValueError, match=r"\['depth/rel_err'\].*missing from the metrics"):
        delta_m({k: v for k, v in MODEL.items() if k != "depth/rel_err"}, BASELINE, HIGHER)
    with pytest.raises(ValueError, match=r"\['seg/miou'\].*higher_is_better"):
        delta_m(MODEL, BASELINE, {k: v for k, v in HIGHER.items() if k != "seg/miou"})
    with pytest.raises(ValueError, match="empty baseline"):
        delta_m(MODEL, {}, HIGHER)


@pytest.mark.parametrize("bad", [0.0, -0.5, math.nan, math.inf])
def test_zero_negative_or_non_finite_baseline_is_refused_by_name(bad: float) -> None:
    for call in (
        lambda: delta_m(MODEL, {**BASELINE, "depth/abs_err": bad}, HIGHER),
        lambda: delta_m_per_task(MODEL, {**BASELINE, "depth/abs_err": bad}, HIGHER, GROUPS),
    ):
        with pytest.raises(ValueError, match=r"'depth/abs_err'.*finite and positive"):
            call()


def test_a_non_finite_metric_value_gives_a_non_finite_delta_m() -> None:
    assert math.isnan(delta_m({**MODEL, "seg/miou": math.nan}, BASELINE, HIGHER))
    assert delta_m({**MODEL, "depth/abs_err": math.inf}, BASELINE, HIGHER) == math.inf


def test_task_grouping_errors_are_named() -> None:
    with pytest.raises(ValueError, match=r"'seg/boundary' of task 'seg' is not in the baseline"):
        delta_m_per_task(MODEL, BASELINE, HIGHER, {**GROUPS, "seg": ["seg/miou", "seg/pixel_acc", "seg/boundary"]})
    with pytest.raises(ValueError, match=r"\['normal/mean'\] belong to no task"):
        delta_m_per_task(MODEL, BASELINE, HIGHER, {k: v for k, v in GROUPS.items() if k != "normal"})
    with pytest.raises(ValueError, match=r"'normal/mean' is listed under both 'normal' and 'extra'"):
        delta_m_per_task(MODEL, BASELINE, HIGHER, {**GROUPS, "extra": ["normal/mean"]})
    with pytest.raises(ValueError, match="task 'normal' must list at least one metric"):
        delta_m_per_task(MODEL, BASELINE, HIGHER, {**GROUPS, "normal": []})
    with pytest.raises(ValueError, match="task 'normal' must list at least one metric"):
        delta_m_per_task(MODEL, BASELINE, HIGHER, {**GROUPS, "normal": "normal/mean"})
    with pytest.raises(ValueError, match="at least one task"):
        delta_m_per_task(MODEL, BASELINE, HIGHER, {})
