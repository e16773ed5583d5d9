import pytest

from taskbalance.registry import Registry


def test_registry_is_case_insensitive_and_names_unknown_entries() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("One")(lambda: 1)
    assert reg.create("ONE") == 1
    assert "one" in reg and reg.names() == ["one"]
    with pytest.raises(KeyError, match="unknown thing 'two'; known: one"):
        reg.get("two")


def test_registry_refuses_a_second_factory_under_one_name() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(lambda: 2)
