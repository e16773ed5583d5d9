import math

import pytest

from taskbalance.protocol.grid import GridTooLargeError, simplex_grid, simplex_grid_size


@pytest.mark.parametrize(("num_tasks", "expected"), [(2, 9), (3, 36), (4, 84)])
def test_paper_grid_sizes(num_tasks: int, expected: int) -> None:
    points = simplex_grid(num_tasks)
    assert len(points) == expected == simplex_grid_size(num_tasks)
    assert len(set(points)) == expected
    for point in points:
        assert len(point) == num_tasks
        assert math.isclose(sum(point), 1.0, abs_tol=1e-9)
        assert min(point) >= 0.1 - 1e-12
        assert all(math.isclose(w * 10, round(w * 10), abs_tol=1e-9) for w in point)


def test_two_task_grid_is_the_paper_list() -> None:
    assert simplex_grid(2) == [(round(0.1 * i, 10), round(1 - 0.1 * i, 10)) for i in range(1, 10)]


def test_many_tasks_are_refused_with_a_suggestion() -> None:
    with pytest.raises(GridTooLargeError, match="coarser step"):
        simplex_grid(6, step=0.05, min_weight=0.05)
    with pytest.raises(GridTooLargeError, match="lower min_weight"):
        simplex_grid(40)


def test_coarser_step_and_zero_floor() -> None:
    assert simplex_grid(3, step=0.5, min_weight=0.0) == [
        (0.0, 0.0, 1.0), (0.0, 0.5, 0.5), (0.0, 1.0, 0.0), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0)
    ]


@pytest.mark.parametrize(("step", "min_weight"), [(0.3, 0.1), (0.1, 0.15), (0.0, 0.0)])
def test_bad_steps_are_refused(step: float, min_weight: float) -> None:
    with pytest.raises(ValueError):
        simplex_grid(2, step=step, min_weight=min_weight)
