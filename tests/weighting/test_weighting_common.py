"""What every method shares: registry, metadata, state_dict, dtype, and the plain EW / Scalarization sums."""

import inspect

import pytest
import torch

from taskbalance.weighting import (
    DWA,
    EW,
    FAMO,
    GLS,
    IMTLL,
    RLW,
    SI,
    STCH,
    UW,
    UWO,
    UWSO,
    WEIGHTINGS,
    GO4Align,
    LossWeighting,
    Scalarization,
    create,
)

EXPECTED = {
    "ew": EW,
    "scalarization": Scalarization,
    "uw": UW,
    "uwo": UWO,
    "uwso": UWSO,
    "dwa": DWA,
    "rlw": RLW,
    "imtll": IMTLL,
    "gls": GLS,
    "famo": FAMO,
    "stch": STCH,
    "si": SI,
    "go4align": GO4Align,
}


def test_registry_holds_exactly_the_loss_weightings() -> None:
    assert WEIGHTINGS.names() == sorted(EXPECTED)
    for name, cls in EXPECTED.items():
        assert WEIGHTINGS.get(name.upper()) is cls


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_name_builds_and_runs(name: str) -> None:
    method = create(name, num_tasks=3)
    assert type(method) is EXPECTED[name]
    assert isinstance(method, LossWeighting | torch.nn.Module)
    losses = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    total = method(losses)
    assert total.shape == ()
    total.backward()
    assert losses.grad is not None
    # Every method here is a weighted sum in the losses: d total / d L = last_weights.
    torch.testing.assert_close(losses.grad, method.last_weights)
    assert method.last_weights.shape == (3,)


def test_create_passes_hyper_parameters() -> None:
    method = create("uwso", num_tasks=3, temperature=2.0)
    assert isinstance(method, UWSO)
    assert method.temperature == 2.0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata_is_present_and_names_real_arguments(name: str) -> None:
    cls = EXPECTED[name]
    assert isinstance(cls.formula, str) and cls.formula and "\n" not in cls.formula
    assert isinstance(cls.paper, str) and cls.paper
    assert isinstance(cls.hyperparameters, dict)
    parameters = inspect.signature(cls.__init__).parameters
    for key, meaning in cls.hyperparameters.items():
        assert key in parameters, f"{cls.__name__}.hyperparameters names {key!r}, not a constructor argument"
        assert isinstance(meaning, str) and meaning
    assert cls.kind == "loss weighting"
    # The common keywords reach the base class through **common.
    method = cls(3, task_names=["a", "b", "c"], validate=False, sync_across_ranks=True)
    assert (method.task_names, method.validate, method.sync_across_ranks) == (["a", "b", "c"], False, True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_float64(name: str) -> None:
    method = create(name, num_tasks=3).to(torch.float64)
    total = method(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    assert total.dtype == torch.float64
    assert method.last_weights.dtype == torch.float64
    for parameter in method.parameters():
        assert parameter.dtype == torch.float64


@pytest.mark.parametrize(("cls", "attribute"), [(UW, "log_variances"), (IMTLL, "log_scales")])
def test_learnable_state_round_trips_through_state_dict(cls: type, attribute: str) -> None:
    method = cls(3)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.3)
    for _ in range(3):
        optimizer.zero_grad()
        method(torch.tensor([0.2, 1.0, 5.0])).backward()
        optimizer.step()
    learned = getattr(method, attribute).detach().clone()
    assert not torch.equal(learned, torch.zeros(3))
    state = method.state_dict()
    assert set(state) == {attribute} | ({"loss_factors"} if cls is UW else set())
    restored = cls(3)
    restored.load_state_dict(state)
    assert torch.equal(getattr(restored, attribute).detach(), learned)
    losses = torch.tensor([0.7, 0.1, 3.0])
    assert torch.equal(restored(losses), method(losses))


def test_scalarization_weights_are_in_state_dict() -> None:
    state = Scalarization(3, weights=[0.2, 0.3, 0.5]).state_dict()
    restored = Scalarization(3)
    restored.load_state_dict(state)
    assert restored.scalar_weights.tolist() == pytest.approx([0.2, 0.3, 0.5])


def test_ew_is_the_plain_sum() -> None:
    method = EW(3)
    assert method(torch.tensor([1.0, 2.5, 4.0])).item() == 7.5
    assert method.last_weights.tolist() == [1.0, 1.0, 1.0]


def test_scalarization_is_the_weighted_sum_and_defaults_to_one_over_k() -> None:
    method = Scalarization(3, weights=[0.2, 0.3, 0.5])
    assert method(torch.tensor([1.0, 2.0, 4.0])).item() == pytest.approx(0.2 + 0.6 + 2.0)
    assert method.last_weights.tolist() == pytest.approx([0.2, 0.3, 0.5])
    assert Scalarization(4).last_weights.tolist() == pytest.approx([0.25] * 4)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_end_epoch_exists_on_every_method(name: str) -> None:
    method = create(name, num_tasks=2)
    method.end_epoch(torch.tensor([1.0, 2.0]))
    method(torch.tensor([1.0, 2.0]))
    assert method.last_weights.shape == (2,)
