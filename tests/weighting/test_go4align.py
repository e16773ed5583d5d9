"""GO4Align (Shen et al. 2024): risk-guided indicators, exact k-means groups, group-centroid weights."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbalance.methods import MethodError, create
from taskbalance.weighting import GO4Align
from taskbalance.weighting.go4align import kmeans_1d

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def f64(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def partitions(items: list[int], groups: int) -> list[list[list[int]]]:
    """Every partition of ``items`` into exactly ``groups`` non-empty sets (brute force, for small K)."""
    result = []
    for labels in itertools.product(range(groups), repeat=len(items)):
        if len(set(labels)) == groups and list(dict.fromkeys(labels)) == list(range(groups)):  # each partition once
            result.append([[items[i] for i, label in enumerate(labels) if label == g] for g in range(groups)])
    return result


def within_sum_of_squares(values: list[float], groups: list[list[int]]) -> float:
    total = 0.0
    for group in groups:
        mean = sum(values[i] for i in group) / len(group)
        total += sum((values[i] - mean) ** 2 for i in group)
    return total


def labels_to_groups(labels: torch.Tensor) -> list[list[int]]:
    return [[k for k in range(len(labels)) if int(labels[k]) == g] for g in sorted(set(labels.tolist()))]


# ------------------------------------------------------------------------------------------------ the clustering
@PROPERTY
@given(
    values=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=7),
    data=st.data(),
)
def test_kmeans_1d_reaches_the_least_within_group_sum_of_squares_of_all_partitions(
    values: list[float], data: st.DataObject
) -> None:
    groups = data.draw(st.integers(1, len(values)))
    labels = kmeans_1d(f64(values), groups)
    found = labels_to_groups(labels)
    assert len(found) == min(groups, len(set(values)))  # every group is used unless values repeat
    assert set(labels.tolist()) == set(range(len(found)))
    for i, j in itertools.permutations(range(len(values)), 2):  # groups are numbered by increasing values
        if labels[i] < labels[j]:
            assert values[i] <= values[j]
    best = min(within_sum_of_squares(values, p) for p in partitions(list(range(len(values))), groups))
    assert within_sum_of_squares(values, found) == pytest.approx(best, rel=1e-9, abs=1e-12)


def test_kmeans_1d_numbers_groups_by_increasing_values() -> None:
    labels = kmeans_1d(f64([9.0, 0.1, 5.0, 0.0, 9.2, 5.1]), 3)
    assert labels.tolist() == [2, 0, 1, 0, 2, 1]


def test_kmeans_1d_uses_fewer_groups_than_asked_only_for_repeated_values() -> None:
    assert kmeans_1d(f64([3.0, 3.0, 3.0]), 2).tolist() == [0, 0, 0]
    assert kmeans_1d(f64([1.0, 4.0, 1.0, 4.0]), 3).tolist() == [0, 1, 0, 1]
    assert kmeans_1d(f64([1.0, 4.0, 1.0, 5.0]), 3).tolist() == [0, 1, 0, 2]


@PROPERTY
@given(
    distinct=st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=5, unique=True),
    data=st.data(),
)
def test_equal_values_share_a_group_and_distinct_ones_do_not(distinct: list[float], data: st.DataObject) -> None:
    # Each distinct value repeated 1–3 times, shuffled; with G = number of distinct values the optimum is exact.
    repeats = data.draw(st.lists(st.integers(1, 3), min_size=len(distinct), max_size=len(distinct)))
    values = [v for v, r in zip(distinct, repeats, strict=True) for _ in range(r)]
    values = data.draw(st.permutations(values))
    labels = kmeans_1d(f64(values), len(distinct)).tolist()
    for i, j in itertools.combinations(range(len(values)), 2):
        assert (labels[i] == labels[j]) == (values[i] == values[j]), (values, labels)


def test_kmeans_1d_is_deterministic_on_ties() -> None:
    # {0}, {1, 2} and {0, 1}, {2} cost the same: the choice is fixed, not random.
    first = kmeans_1d(f64([0.0, 1.0, 2.0]), 2)
    for _ in range(5):
        assert torch.equal(kmeans_1d(f64([0.0, 1.0, 2.0]), 2), first)


@pytest.mark.parametrize("groups", [0, 4, 1.0, True])
def test_kmeans_1d_refuses_a_bad_number_of_groups(groups: object) -> None:
    with pytest.raises(ValueError, match=r"kmeans_1d: num_groups must be an int in \[1, 3\]"):
        kmeans_1d(f64([0.0, 1.0, 2.0]), groups)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ the weights
def test_hand_computed_two_steps() -> None:
    eta = 0.5
    method = GO4Align(3, num_groups=2, robust_step_size=eta).double()

    # Step 1, L = (1, 2, 4): p ∝ exp(−η·L) = (e^−0.5, e^−1, e^−2) / 1.109745 = (0.546549, 0.331499, 0.121952);
    # γ = (7/L)·p = (3.825846, 1.160246, 0.213415). {0}, {1, 2} costs (1.160246 − 0.213415)²/2 = 0.448 and
    # {0, 1}, {2} costs (3.825846 − 1.160246)²/2 = 3.55; so ω = (3.825846, 0.686831, 0.686831).
    total = method(f64([1.0, 2.0, 4.0]))
    assert method.last_weights.tolist() == pytest.approx([3.825846, 0.686831, 0.686831], abs=2e-6)
    assert method.last_groups.tolist() == [1, 0, 0]
    assert float(total) == pytest.approx(3.825846 * 1 + 0.686831 * (2 + 4), abs=1e-5)

    # Step 2, L = (2, 1, 1): cumulated losses (3, 3, 5), p ∝ (e^−1.5, e^−1.5, e^−2.5) = (0.422319, 0.422319, 0.155362);
    # γ = (4/L)·p = (0.844638, 1.689275, 0.621450). Sorted 0.621450 (task 2), 0.844638 (task 0), 1.689275 (task 1):
    # {2, 0}, {1} costs 0.0249, {2}, {0, 1} costs 0.357; so ω = (0.733044, 1.689275, 0.733044): the history moved
    # task 0 from its own group into task 2's.
    method(f64([2.0, 1.0, 1.0]))
    assert method.last_weights.tolist() == pytest.approx([0.733044, 1.689275, 0.733044], abs=2e-6)
    assert method.last_groups.tolist() == [0, 1, 0]

    # The same two steps written out with exp and an enumeration of the three 2-group partitions.
    cumulated = [3.0, 3.0, 5.0]
    normaliser = sum(math.exp(-eta * c) for c in cumulated)
    gamma = [4.0 / loss * math.exp(-eta * c) / normaliser for loss, c in zip([2.0, 1.0, 1.0], cumulated, strict=True)]
    best = min(partitions([0, 1, 2], 2), key=lambda p: within_sum_of_squares(gamma, p))
    expected = [0.0] * 3
    for group in best:
        for k in group:
            expected[k] = sum(gamma[i] for i in group) / len(group)
    assert method.last_weights.tolist() == pytest.approx(expected, rel=1e-12)


@PROPERTY
@given(
    steps=st.lists(st.lists(st.floats(1e-3, 1e3), min_size=4, max_size=4), min_size=1, max_size=6),
    groups=st.integers(1, 4),
    eta=st.sampled_from([0.0, 1e-4, 0.1, 1.0]),
)
def test_weights_are_positive_finite_group_constant_and_keep_the_indicator_sum(
    steps: list[list[float]], groups: int, eta: float
) -> None:
    method = GO4Align(4, num_groups=groups, robust_step_size=eta).double()
    cumulated = torch.zeros(4, dtype=torch.float64)
    for losses in steps:
        values = f64(losses)
        total = method(values)
        cumulated += values
        weights, labels = method.last_weights, method.last_groups
        assert torch.isfinite(total) and bool((weights >= 0).all()) and bool(torch.isfinite(weights).all())
        if eta * float(cumulated.max() - cumulated.min()) < 600:  # short of float64's exp underflow: all > 0
            assert bool((weights > 0).all()), weights
        # p_t ∝ exp(−η·Σ_τ L_τ) and sums to 1.
        probs = method.log_probs.exp()
        assert float(probs.sum()) == pytest.approx(1.0, rel=1e-12)
        torch.testing.assert_close(probs, torch.softmax(-eta * cumulated, dim=0), rtol=1e-10, atol=0)
        indicators = values.sum() / values * probs
        # Σ_k γ_k·L_k = Σ_k L_k, and the centroids keep the indicators' sum.
        assert float((indicators * values).sum()) == pytest.approx(float(values.sum()), rel=1e-10)
        assert float(weights.sum()) == pytest.approx(float(indicators.sum()), rel=1e-10)
        assert sorted(set(labels.tolist())) == list(range(min(groups, len(set(indicators.tolist())))))
        for group in range(groups):
            members = labels == group
            torch.testing.assert_close(weights[members], indicators[members].mean().expand(int(members.sum())))
        assert float(total) == pytest.approx(float((weights * values).sum()), rel=1e-12)


def test_one_group_gives_every_task_the_mean_indicator_and_k_groups_the_indicators() -> None:
    losses = f64([0.5, 1.0, 3.0])
    probs = torch.softmax(-1e-4 * losses, dim=0)
    indicators = losses.sum() / losses * probs
    one = GO4Align(3).double()  # the default: num_groups = 1
    one(losses)
    torch.testing.assert_close(one.last_weights, indicators.mean().expand(3), rtol=1e-12, atol=0)
    assert one.last_groups.tolist() == [0, 0, 0]
    every = GO4Align(3, num_groups=3).double()
    every(losses)
    torch.testing.assert_close(every.last_weights, indicators, rtol=1e-12, atol=0)
    assert every.last_groups.tolist() == [2, 1, 0]  # numbered by increasing indicator


def test_tasks_with_equal_losses_fall_into_one_group() -> None:
    method = GO4Align(4, num_groups=2, robust_step_size=0.01)
    for losses in ([1.0, 2.0, 1.0, 2.0], [0.5, 3.0, 0.5, 3.0], [0.8, 2.5, 0.8, 2.5]):
        method(torch.tensor(losses))
        groups = method.last_groups.tolist()
        assert groups[0] == groups[2] and groups[1] == groups[3] and groups[0] != groups[1]
        assert method.last_weights[0] == method.last_weights[2] and method.last_weights[1] == method.last_weights[3]


# ------------------------------------------------------------------------------------------------ first steps
def test_before_and_at_the_first_step() -> None:
    method = GO4Align(3, num_groups=2, robust_step_size=0.5)
    assert method.last_weights.tolist() == [1.0, 1.0, 1.0]
    assert method.last_groups.tolist() == [-1, -1, -1]
    torch.testing.assert_close(method.log_probs.exp(), torch.full((3,), 1 / 3))
    # No warm-up: the first step's own losses already enter p.
    method(torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(method.log_probs.exp(), torch.softmax(-0.5 * torch.tensor([1.0, 2.0, 3.0]), dim=0))


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_equal_first_losses_give_weight_one(groups: int) -> None:
    method = GO4Align(3, num_groups=groups)
    method(torch.full((3,), 2.5))
    torch.testing.assert_close(method.last_weights, torch.ones(3))


def test_zero_step_size_keeps_p_uniform() -> None:
    method = GO4Align(2, num_groups=2, robust_step_size=0.0).double()
    for losses in ([1.0, 4.0], [2.0, 0.5], [9.0, 1.0]):
        method(f64(losses))
    torch.testing.assert_close(method.log_probs.exp(), f64([0.5, 0.5]), rtol=1e-15, atol=0)
    assert method.last_weights.tolist() == pytest.approx([10.0 / 9.0 / 2, 10.0 / 1.0 / 2])


# ------------------------------------------------------------------------------------------------ state
def test_state_dict_round_trip_gives_identical_weights() -> None:
    generator = torch.Generator().manual_seed(0)
    batches = [torch.rand(5, generator=generator) * 3 + 0.1 for _ in range(12)]
    method = GO4Align(5, num_groups=2, robust_step_size=0.3)
    for losses in batches[:6]:
        method(losses)
    state = method.state_dict()
    assert set(state) == {"log_probs"}
    restored = GO4Align(5, num_groups=2, robust_step_size=0.3)
    restored.load_state_dict(state)
    for losses in batches[6:]:
        assert torch.equal(restored(losses), method(losses))
        assert torch.equal(restored.last_weights, method.last_weights)
        assert torch.equal(restored.last_groups, method.last_groups)
    assert torch.equal(restored.log_probs, method.log_probs)


def test_the_weighted_total_trains_a_parameter_like_its_weights_say() -> None:
    weight = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    method = create("go4align", 3, num_groups=2, robust_step_size=0.1)
    method.step([weight[0] ** 2 + 0.1, (weight[1] - 1) ** 2 + 0.1, weight[2] ** 2 + 0.1])
    expected = method.last_weights * torch.stack([2 * weight[0], 2 * (weight[1] - 1), 2 * weight[2]]).detach()
    torch.testing.assert_close(weight.grad, expected)


# ------------------------------------------------------------------------------------------------ bad options
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_groups": 0}, r"GO4Align: num_groups must be an int in \[1, num_tasks=3\], got 0"),
        ({"num_groups": 4}, r"GO4Align: num_groups must be an int in \[1, num_tasks=3\], got 4"),
        ({"num_groups": 2.0}, r"GO4Align: num_groups must be an int .* got 2.0"),
        ({"num_groups": True}, r"GO4Align: num_groups must be an int .* got True"),
        ({"num_groups": "2"}, r"GO4Align: num_groups must be an int .* got '2'"),
        ({"robust_step_size": -1e-4}, r"GO4Align: robust_step_size must be finite and >= 0, got -0.0001"),
        ({"robust_step_size": math.inf}, r"GO4Align: robust_step_size must be finite and >= 0, got inf"),
        ({"robust_step_size": math.nan}, r"GO4Align: robust_step_size must be finite and >= 0, got nan"),
        ({"robust_step_size": "small"}, r"GO4Align: robust_step_size must be a number, got 'small'"),
    ],
)
def test_bad_hyper_parameters_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GO4Align(3, **options)  # type: ignore[arg-type]
    with pytest.raises(MethodError, match=message):
        create("go4align", 3, **options)


def test_an_unknown_option_lists_the_hyper_parameters() -> None:
    with pytest.raises(MethodError, match=r"has no option 'groups' \(its hyper-parameters: num_groups, robust_step"):
        create("go4align", 3, groups=2)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_non_positive_loss_names_the_task(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"GO4Align: the loss of task 1 \('depth'\) is {bad}; .* must be > 0"):
        GO4Align(2, task_names=["seg", "depth"])(torch.tensor([1.0, bad]))
