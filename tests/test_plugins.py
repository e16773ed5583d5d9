"""Plugins: a method, a dataset and a model of a module outside taskbalance, found by the registries in this
process, in the CLI and in a spawned worker; a broken plugin is an error that names it."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from taskbalance import methods, plugins
from taskbalance.cli import main
from taskbalance.data import DATASETS
from taskbalance.execution.local_pool import run_in_pool
from taskbalance.models import MODELS
from taskbalance.training import RunConfig
from taskbalance.weighting import WEIGHTINGS

PLUGIN = textwrap.dedent('''
    """A lab's own weighting, dataset and model, registered on import."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from taskbalance.data import DATASETS
    from taskbalance.data.base import MultiTaskData
    from taskbalance.models import MODELS
    from taskbalance.models.base import MultiTaskModel
    from taskbalance.tasks import Classification, Regression
    from taskbalance.weighting.ew import EW
    from taskbalance.weighting.registry import WEIGHTINGS


    @WEIGHTINGS.register("plugin_half")
    class Half(EW):
        """Half of EW: ``total = ½·Σ_k L_k``."""

        formula = "½·Σ_k L_k"
        label = "Half-EW"

        def combine(self, losses, values):
            return losses.sum() / 2, torch.full_like(values, 0.5)


    class Split(TensorDataset):
        def __getitem__(self, index):
            x, label, value = super().__getitem__(index)
            return x, {"sign": label, "mean": value}


    def split(n, seed):
        x = torch.randn(n, 1, 2, 4, generator=torch.Generator().manual_seed(seed))
        return Split(x, (x.flatten(1).sum(1) > 0).long(), x.flatten(1).mean(1, keepdim=True))


    @DATASETS.register("plugin_points")
    def plugin_points():
        tasks = {"sign": Classification("sign", 2), "mean": Regression("mean")}
        return MultiTaskData("plugin_points", split(32, 0), split(16, 1), split(16, 2), tasks, (1, 2, 4))


    @MODELS.register("plugin_mlp")
    def plugin_mlp(heads, in_channels=1):
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(8 * in_channels, 8), nn.ReLU())
        return MultiTaskModel(encoder, {name: nn.Linear(8, spec.out_channels) for name, spec in heads.items()})
''')

CONFIG = RunConfig(dataset="plugin_points", model="plugin_mlp", method="plugin_half", epochs=1, batch_size=16)


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for plugin modules; this process's plugin state and registries restored afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_searched", False)
    monkeypatch.setattr(plugins, "_loaded", [])
    monkeypatch.delenv(plugins.ENVIRONMENT_VARIABLE, raising=False)
    for registry in (WEIGHTINGS, DATASETS, MODELS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("lab_"):
            del sys.modules[name]


def test_a_plugin_named_by_the_variable_registers_its_method_dataset_and_model(
    fresh_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fresh_plugins / "lab_plugin.py").write_text(PLUGIN)
    monkeypatch.setenv(plugins.ENVIRONMENT_VARIABLE, "lab_plugin")
    assert "plugin_half" in methods.names()  # the first search imports the plugin
    assert plugins.loaded_plugins() == ["lab_plugin"]
    half = methods.create("plugin_half", 2)
    losses = torch.tensor([1.0, 3.0], requires_grad=True)
    assert float(half(losses).detach()) == 2.0 and half.last_weights.tolist() == [0.5, 0.5]
    assert "plugin_points" in DATASETS and "plugin_mlp" in MODELS
    assert methods.label("plugin_half") == "Half-EW" and methods.label("unknown_thing") == "unknown_thing"
    assert plugins.load_plugins() == []  # once per process


def test_the_cli_trains_and_lists_with_a_plugin(fresh_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (fresh_plugins / "lab_cli.py").write_text(PLUGIN)
    monkeypatch.setenv(plugins.ENVIRONMENT_VARIABLE, "lab_cli")
    threads = torch.get_num_threads()
    config = fresh_plugins / "run.toml"
    config.write_text('dataset = "plugin_points"\nmodel = "plugin_mlp"\nmethod = "plugin_half"\nepochs = 1\n'
                      "batch_size = 16\n")
    try:
        trained = CliRunner().invoke(main, ["train", str(config)])
    finally:
        torch.set_num_threads(threads)
    assert trained.exit_code == 0, trained.output
    assert "sign/accuracy" in trained.output and "mean/" in trained.output
    listed = CliRunner().invoke(main, ["methods", "--json"])
    entry = next(e for e in json.loads(listed.output) if e["name"] == "plugin_half")
    assert entry["formula"] == "½·Σ_k L_k"


def test_bench_compares_a_plugin_method_on_a_plugin_dataset(
    fresh_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fresh_plugins / "lab_bench.py").write_text(PLUGIN)
    monkeypatch.setenv(plugins.ENVIRONMENT_VARIABLE, "lab_bench")
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, [
            "bench", "--dataset", "plugin_points", "--model", "plugin_mlp", "--methods", "ew,plugin_half",
            "--epochs", "1", "--seeds", "0", "--workers", "1", "--out", str(fresh_plugins / "out")])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "plugin_points / plugin_mlp" in result.output and "Half-EW" in result.output  # the plugin's own label


def test_a_spawned_worker_finds_the_plugin_by_itself(fresh_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker is a fresh interpreter: nothing registered here travels with it, only the variable and sys.path.
    (fresh_plugins / "lab_worker.py").write_text(PLUGIN)
    monkeypatch.setenv(plugins.ENVIRONMENT_VARIABLE, "lab_worker")
    [outcome] = list(run_in_pool([CONFIG], None, None, workers=2))
    assert outcome.error is None, outcome.error
    assert outcome.result is not None and outcome.result.config.method == "plugin_half"
    assert outcome.result.epochs[-1].mean_weights == {"sign": 0.5, "mean": 0.5}


def test_an_entry_point_names_a_plugin(fresh_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (fresh_plugins / "lab_packaged.py").write_text(PLUGIN)
    point = EntryPoint(name="lab", value="lab_packaged", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [point] if group == plugins.ENTRY_POINT_GROUP else [])
    assert plugins.configured_plugins() == [("lab_packaged", "entry point 'lab' of group 'taskbalance.plugins'")]
    assert "plugin_half" in WEIGHTINGS
    assert plugins.loaded_plugins() == ["lab_packaged"]


def test_a_missing_plugin_is_an_error_naming_it_and_where_it_was_named(
    fresh_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(plugins.ENVIRONMENT_VARIABLE, "lab_absent")
    with pytest.raises(plugins.PluginError, match=r"plugin 'lab_absent' \(TASKBALANCE_PLUGINS\) could not be "
                                                  r"imported: ModuleNotFoundError"):
        plugins.load_plugins()
    monkeypatch.setattr(plugins, "_searched", False)
    result = CliRunner().invoke(main, ["methods"])
    assert result.exit_code == 1 and "plugin 'lab_absent' (TASKBALANCE_PLUGINS)" in result.output
    assert "Traceback" not in result.output


def test_a_plugin_that_takes_a_builtin_name_is_refused(fresh_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (fresh_plugins / "lab_clash.py").write_text(PLUGIN.replace('register("plugin_half")', 'register("ew")'))
    monkeypatch.setenv(plugins.ENVIRONMENT_VARIABLE, "lab_clash")
    with pytest.raises(plugins.PluginError, match=r"'lab_clash'.*loss weighting 'ew' is registered twice"):
        plugins.load_plugins()
    assert methods.method_class("ew").__name__ == "EW"
