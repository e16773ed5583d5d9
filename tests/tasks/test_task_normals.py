"""Surface normals: 1 − cos loss and angle statistics at known angles, checked by hand."""

import math

import pytest
import torch

from taskbalance.tasks import SurfaceNormals


def vectors_at(angles_degrees: list[float], lengths: list[float] | None = None) -> torch.Tensor:
    """Vectors [1, 3, 1, N] in the x–z plane at the given angles from +z (optionally not unit length)."""
    lengths = lengths or [1.0] * len(angles_degrees)
    columns = [
        [r * math.sin(math.radians(a)), 0.0, r * math.cos(math.radians(a))]
        for a, r in zip(angles_degrees, lengths, strict=True)
    ]
    return torch.tensor(columns, dtype=torch.float32).T.reshape(1, 3, 1, -1)


def up(count: int) -> torch.Tensor:
    return vectors_at([0.0] * count)


def test_metrics_at_known_angles_even_count_median_is_the_mean_of_the_middle_two() -> None:
    # Angles 0°, 90°, 45°, 60° (predictions of several lengths) plus one invalid pixel (target 0).
    prediction = torch.cat([vectors_at([0, 90, 45, 60], [5.0, 0.5, 2.0, 1.0]), vectors_at([10])], dim=3)
    target = torch.cat([up(4), torch.zeros(1, 3, 1, 1)], dim=3)
    meter = SurfaceNormals("normal").meter()
    meter.update(prediction, target)
    result = meter.compute()
    # sorted 0, 45, 60, 90 → median (45 + 60)/2; mean 195/4; only 0° is below 11.25°, 22.5° and 30°.
    assert result == pytest.approx(
        {"mean_angle": 48.75, "median_angle": 52.5, "within_11_25": 0.25, "within_22_5": 0.25, "within_30": 0.25},
        abs=1e-4,
    )


def test_metrics_at_known_angles_odd_count() -> None:
    meter = SurfaceNormals("normal").meter()
    meter.update(vectors_at([0, 20, 25, 45, 90]), up(5))
    assert meter.compute() == pytest.approx(
        {"mean_angle": 36.0, "median_angle": 25.0, "within_11_25": 0.2, "within_22_5": 0.4, "within_30": 0.6},
        abs=1e-4,
    )


def test_loss_is_one_minus_cosine_over_valid_pixels() -> None:
    prediction = torch.cat([vectors_at([0, 90, 45, 60], [5.0, 0.5, 2.0, 1.0]), vectors_at([180])], dim=3)
    target = torch.cat([up(4), torch.zeros(1, 3, 1, 1)], dim=3)
    expected = (0.0 + 1.0 + (1 - math.sqrt(0.5)) + 0.5) / 4
    assert float(SurfaceNormals("normal").loss(prediction, target)) == pytest.approx(expected, abs=1e-6)


def test_a_pixel_is_valid_when_any_target_channel_is_nonzero() -> None:
    target = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    prediction = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    meter = SurfaceNormals("normal").meter()
    meter.update(prediction, target)
    assert meter.compute()["mean_angle"] == pytest.approx(90.0)
    assert float(SurfaceNormals("normal").loss(prediction, target)) == pytest.approx(1.0)


def test_small_angles_are_resolved_although_float32_cosines_round_to_one() -> None:
    prediction = vectors_at([0.01])  # float32 cos(0.01°) is exactly 1.0, so a float32 arccos would give 0°
    meter = SurfaceNormals("normal").meter()
    meter.update(prediction, up(1))
    assert meter.compute()["mean_angle"] == pytest.approx(0.01, rel=1e-4)


def test_two_batches_accumulate_to_the_same_result_as_one_and_median_is_exact() -> None:
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(3, 3, 5, 4, generator=generator)
    target = torch.nn.functional.normalize(torch.randn(3, 3, 5, 4, generator=generator), dim=1)
    target[:, :, 0, 0] = 0  # some invalid pixels
    task = SurfaceNormals("normal")
    whole, parts = task.meter(), task.meter()
    whole.update(prediction, target)
    parts.update(prediction[:1], target[:1])
    parts.update(prediction[1:], target[1:])
    assert whole.compute() == pytest.approx(parts.compute(), rel=1e-12)
    # Independent reference: angles from float64 dot products, median and shares by sorting.
    unit = torch.nn.functional.normalize(prediction.double(), dim=1)
    cosines = (unit * target.double()).sum(1)[(target != 0).any(1)]
    angles = sorted(math.degrees(math.acos(max(-1.0, min(1.0, c)))) for c in cosines.tolist())
    count = len(angles)
    assert count == 3 * 5 * 4 - 3
    median = (angles[(count - 1) // 2] + angles[count // 2]) / 2
    result = whole.compute()
    assert result["median_angle"] == pytest.approx(median, abs=1e-5)
    # (rel 1e-7: the meter re-normalises the float32 targets, whose norms are 1 only to float32 precision)
    assert result["mean_angle"] == pytest.approx(sum(angles) / count, rel=1e-7)
    assert result["within_30"] == sum(a < 30 for a in angles) / count


def test_histogram_median_is_within_half_a_bin_of_the_exact_median() -> None:
    generator = torch.Generator().manual_seed(3)
    prediction = torch.randn(4, 3, 8, 8, generator=generator)
    target = torch.nn.functional.normalize(torch.randn(4, 3, 8, 8, generator=generator), dim=1)
    exact, binned = SurfaceNormals("normal").meter(), SurfaceNormals("normal", median_bin_degrees=0.5).meter()
    for meter in (exact, binned):
        meter.update(prediction[:2], target[:2])
        meter.update(prediction[2:], target[2:])
    exact_result, binned_result = exact.compute(), binned.compute()
    assert abs(binned_result.pop("median_angle") - exact_result.pop("median_angle")) <= 0.25
    assert binned_result == pytest.approx(exact_result, rel=1e-12)  # the other metrics do not use the bins


def test_histogram_median_reports_the_bin_centre() -> None:
    meter = SurfaceNormals("normal", median_bin_degrees=1.0).meter()
    meter.update(vectors_at([0.2, 10.7, 30.1, 179.99]), up(4))
    # Middle values 10.7 (bin [10, 11)) and 30.1 (bin [30, 31)) → (10.5 + 30.5) / 2.
    assert meter.compute()["median_angle"] == pytest.approx(20.5)


def test_meter_works_under_no_grad_and_on_tensors_that_require_grad() -> None:
    prediction = vectors_at([45.0]).requires_grad_(True)
    meter = SurfaceNormals("normal").meter()
    with torch.no_grad():
        meter.update(prediction, up(1))
    meter.update(prediction, up(1))
    assert meter.compute()["median_angle"] == pytest.approx(45.0, abs=1e-4)


def test_metrics_directions_and_head() -> None:
    task = SurfaceNormals("normal")
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [
        ("mean_angle", False),
        ("median_angle", False),
        ("within_11_25", True),
        ("within_22_5", True),
        ("within_30", True),
    ]
    assert task.head.out_channels == 3 and task.head.dense


def test_bad_input_is_refused_with_a_clear_error() -> None:
    task = SurfaceNormals("normal")
    with pytest.raises(ValueError) as error:
        task.loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5))
    assert "'normal'" in str(error.value) and "(2, 3, 4, 4)" in str(error.value) and "(2, 3, 4, 5)" in str(error.value)
    with pytest.raises(ValueError, match=r"\(2, 1, 4, 4\)"):
        task.meter().update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="no valid pixel"):
        task.meter().compute()
    with pytest.raises(ValueError, match="median_bin_degrees"):
        SurfaceNormals("normal", median_bin_degrees=0.0)


@pytest.mark.parametrize("median_bin_degrees", [None, 1e-3])
def test_batch_averaging_averages_each_batchs_statistics_the_median_included(median_bin_degrees: float | None) -> None:
    # Batch A: angles 10°, 20°, 40° (median 20°); batch B: angle 50° alone. Split median: (20 + 40)/2 = 30°.
    batches = [(vectors_at([10, 20, 40]), up(3)), (vectors_at([50]), up(1))]
    split = SurfaceNormals("normal", median_bin_degrees).meter()
    batch = SurfaceNormals("normal", median_bin_degrees, averaging="batch").meter()
    for prediction, target in batches:
        split.update(prediction, target)
        batch.update(prediction, target)
    tolerance = 1e-4 if median_bin_degrees is None else 1e-3
    assert split.compute() == pytest.approx(
        {"mean_angle": 30.0, "median_angle": 30.0, "within_11_25": 0.25, "within_22_5": 0.5, "within_30": 0.5},
        abs=tolerance,
    )
    assert batch.compute() == pytest.approx(
        {"mean_angle": (70 / 3 + 50) / 2, "median_angle": (20 + 50) / 2, "within_11_25": (1 / 3) / 2,
         "within_22_5": (2 / 3) / 2, "within_30": (2 / 3) / 2},
        abs=tolerance,
    )
    assert "averaging='batch'" in repr(SurfaceNormals("normal", averaging="batch"))
