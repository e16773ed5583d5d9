"""CLI commands that need no dataset: the method listing and config validation."""

import json
from pathlib import Path

from click.testing import CliRunner

from taskbalance.cli import main
from taskbalance.weighting import WEIGHTINGS


def test_methods_lists_every_registered_method_with_its_formula() -> None:
    result = CliRunner().invoke(main, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    listed = {entry["name"]: entry for entry in json.loads(result.output)}
    assert set(WEIGHTINGS.names()) <= set(listed)
    assert listed["uwso"]["label"] == "UW-SO" and "softmax" in listed["uwso"]["formula"]
    assert "temperature" in listed["uwso"]["hyperparameters"]
    assert all(entry["formula"] for entry in listed.values())


def test_methods_table_renders() -> None:
    result = CliRunner().invoke(main, ["methods"])
    assert result.exit_code == 0 and "UW-SO" in result.output


def test_train_names_the_unknown_field_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('method = "uwso"\nlearning_rate = 0.1\n')
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 2
    assert "run.toml" in result.output and "learning_rate" in result.output


def test_train_names_a_bad_value(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("epochs = 0\n")
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 2 and "epochs must be an integer ≥ 1" in result.output


def test_train_reports_invalid_toml(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("epochs = = 3\n")
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_bench_rejects_an_unknown_method() -> None:
    result = CliRunner().invoke(main, ["bench", "--methods", "ew,nope", "--epochs", "1"])
    assert result.exit_code == 2 and "unknown method 'nope'" in result.output


def test_every_method_has_a_display_label_and_a_paper() -> None:
    from taskbalance import methods

    for name in methods.names():
        info = methods.info(name)
        assert info.label != name or name.isupper(), f"{name} has no display label"
        assert info.paper, f"{name} cites no paper"


def test_bench_with_ray_and_no_ray_installed_is_a_usage_error(monkeypatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: object, **kwargs: object) -> object:
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = CliRunner().invoke(main, ["bench", "--executor", "ray", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "taskbalance[ray]" in result.output and not (tmp_path / "results.sqlite").exists()
