import pytest

from taskbalance.training.config import ConfigError, RunConfig


def test_run_id_is_stable_and_sensitive_to_every_field() -> None:
    base = RunConfig()
    assert base.run_id() == RunConfig().run_id()
    assert len(base.run_id()) == 16
    assert base.replace(seed=1).run_id() != base.run_id()
    assert base.replace(method_options={"temperature": 2.0}).run_id() != base.run_id()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", -1.0, "lr must be a positive"),
        ("lr", float("nan"), "lr must be a positive"),
        ("epochs", 0, "epochs must be an integer ≥ 1"),
        ("batch_size", 2.5, "batch_size must be an integer"),
        ("weight_decay", -0.1, "weight_decay"),
        ("tasks", ["a", "a"], "tasks lists a task twice"),
        ("method_options", [1], "method_options must be a table"),
        ("method", "", "method must be a non-empty string"),
        ("optimizer", "adamw", r"optimizer must be one of \['adam', 'sgd'\], got 'adamw'"),
        ("momentum", 1.0, r"momentum must be a number in \[0, 1\), got 1.0"),
        ("momentum", 0.9, "momentum is SGD's \\(optimizer = 'sgd'\\); optimizer is 'adam'"),
        ("method_lr", 0.0, r"method_lr must be a positive finite number \(or absent: the model's lr\), got 0.0"),
    ],
)
def test_invalid_fields_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({field: value})


def test_unknown_fields_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['learning_rate'\]"):
        RunConfig.from_dict({"learning_rate": 0.1})


def test_round_trip_through_dict() -> None:
    config = RunConfig(method="uwso", method_options={"temperature": 3.0}, tasks=["left", "right"], seed=4)
    assert RunConfig.from_dict(config.to_dict()) == config


def test_a_method_revision_changes_the_run_id_of_its_runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import json

    from taskbalance import methods

    def plain_id(config: RunConfig) -> str:  # the identity before revisions existed
        values = {k: v for k, v in config.to_dict().items() if k not in ("device", "deterministic", "data_on_device")}
        later_defaults = (("precision", "fp32"), ("loader_workers", 0), ("optimizer", "adam"), ("momentum", 0.0),
                          ("method_lr", None))
        values = {k: v for k, v in values.items() if (k, v) not in later_defaults}
        return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]

    uwso = RunConfig(method="uwso")
    assert uwso.run_id() == plain_id(uwso)  # revision 0: stored runs keep their ids
    stch = RunConfig(method="stch")
    assert stch.identity()["method_revisions"] == {"stch": 1} and stch.run_id() != plain_id(stch)
    composed = RunConfig(method="pcgrad", method_options={"weighting": "stch"})
    assert composed.identity()["method_revisions"] == {"stch": 1}
    before = uwso.run_id()
    monkeypatch.setattr(methods.method_class("uwso"), "revision", 2)
    assert RunConfig(method="uwso").run_id() != before
    assert RunConfig(method="a_plugin_not_installed").identity().get("method_revisions") is None


def test_the_default_optimizer_leaves_the_identity_of_earlier_runs_and_sgd_enters_it() -> None:
    base = RunConfig()
    earlier = {k: v for k, v in base.identity().items()}
    assert "optimizer" not in earlier and "momentum" not in earlier  # ids of runs stored before the fields existed
    sgd = base.replace(optimizer="sgd")
    assert sgd.identity()["optimizer"] == "sgd" and "momentum" not in sgd.identity()
    assert len({base.run_id(), sgd.run_id(), sgd.replace(momentum=0.9).run_id()}) == 3


def test_an_integer_momentum_of_zero_is_the_default_and_sgd_without_momentum_one_experiment() -> None:
    assert RunConfig.from_dict({"momentum": 0}).run_id() == RunConfig().run_id()  # TOML `momentum = 0`
    assert RunConfig(optimizer="sgd", momentum=0).run_id() == RunConfig(optimizer="sgd", momentum=0.0).run_id()


def test_a_config_pickled_before_the_optimizer_fields_existed_keeps_its_run_id() -> None:
    import pickle

    config = RunConfig(method="dwa", lr=0.01, epochs=50)
    older = pickle.loads(pickle.dumps(config))
    del older.__dict__["optimizer"], older.__dict__["momentum"]  # what unpickling an older instance gives
    revived = pickle.loads(pickle.dumps(older))
    assert (revived.optimizer, revived.momentum) == ("adam", 0.0)  # the class defaults fill in
    assert revived.run_id() == config.run_id() and revived.to_dict() == config.to_dict()


def test_method_lr_enters_the_identity_only_of_methods_with_parameters_of_their_own() -> None:
    assert "method_lr" not in RunConfig(method="uw").identity()
    uw = RunConfig(method="uw", method_lr=0.025)
    assert uw.identity()["method_lr"] == 0.025 and uw.run_id() != RunConfig(method="uw").run_id()
    composed = RunConfig(method="pcgrad", method_options={"weighting": "uw"}, method_lr=0.025)
    assert composed.identity()["method_lr"] == 0.025
    for name in ("ew", "dwa", "pcgrad"):  # nothing to apply it to: the same experiment, the same id
        assert RunConfig(method=name, method_lr=0.025).run_id() == RunConfig(method=name).run_id()


def test_an_int_for_a_real_valued_field_is_the_same_run_as_its_float() -> None:
    as_ints = RunConfig(method="uw", lr=1, weight_decay=0, lr_gamma=1, method_lr=2)
    as_floats = RunConfig(method="uw", lr=1.0, weight_decay=0.0, lr_gamma=1.0, method_lr=2.0)
    assert as_ints.run_id() == as_floats.run_id()
    assert all(isinstance(as_ints.to_dict()[name], float) for name in ("lr", "weight_decay", "lr_gamma", "method_lr"))
    assert RunConfig.from_dict({"optimizer": "sgd", "momentum": 0}).momentum == 0.0
    assert RunConfig(lr=2).run_id() != RunConfig(lr=1).run_id()
    with pytest.raises(ConfigError, match="lr must be a positive finite number, got True"):
        RunConfig(lr=True)


def test_an_int_for_a_real_valued_method_option_is_the_same_run_as_its_float() -> None:
    def same(method: str, given: dict, floats: dict) -> bool:
        return RunConfig(method=method, method_options=given).run_id() == \
            RunConfig(method=method, method_options=floats).run_id()

    assert same("uwso", {"temperature": 1}, {"temperature": 1.0})
    assert same("scalarization", {"weights": [1, 0, 0]}, {"weights": [1.0, 0.0, 0.0]})
    assert same("pcgrad", {"weighting": "uw", "weighting_options": {"init": 0}},
                {"weighting": "uw", "weighting_options": {"init": 0.0}})
    # An integer option stays an integer, and a different value is a different run.
    assert RunConfig(method="nashmtl", method_options={"iterations": 30}).identity()["method_options"] == \
        {"iterations": 30}
    assert not same("uwso", {"temperature": 2}, {"temperature": 1.0})
    # A bool is no number, and a plugin's options (no class to read them from) are kept as given.
    assert RunConfig(method="cagrad", method_options={"rescale": True}).identity()["method_options"] == \
        {"rescale": True}
    assert RunConfig(method="not-installed", method_options={"x": 1}).identity()["method_options"] == {"x": 1}
