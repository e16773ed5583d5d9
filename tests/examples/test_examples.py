"""Every script under examples/ runs, and the Lightning example trains exactly as taskbalance's own step does."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.utils.data import DataLoader

from taskbalance import data as datasets
from taskbalance import methods, models

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The arguments that make each example a few-second smoke run, and what its output must say; every script in
# examples/ must be listed.
SMOKE_ARGUMENTS = {
    "lightning_uwso.py": [
        (["--method", "uwso", "--max-steps", "3", "--num-train", "512"], "3 steps; last weights"),
        (["--method", "cagrad", "--max-steps", "3", "--num-train", "512"], "3 steps; last weights"),
    ],
    "own_loop.py": [
        (["--method", "uwso", "--option", "temperature=2", "--epochs", "2", "--num-train", "256"],
         "uwso: test price RMSE"),
        (["--method", "pcgrad", "--epochs", "2", "--num-train", "256"], "pcgrad: test price RMSE"),
    ],
    # The plugin's own method and dataset, trained by `taskbalance bench` in spawned workers.
    "plugin_lab.py": [(["--epochs", "1"], "lab_signals / lab_mlp: test Δm")],
}


def test_every_example_has_a_smoke_run() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SMOKE_ARGUMENTS)


@pytest.mark.parametrize(
    ("script", "arguments", "expected"),
    [(s, a, e) for s, runs in SMOKE_ARGUMENTS.items() for a, e in runs], ids=lambda v: str(v),
)
def test_example_runs(script: str, arguments: list[str], expected: str, tmp_path: Path) -> None:
    # In a folder of its own: whatever an example writes next to itself (runs/, logs) stays out of the checkout.
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *arguments], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout


def _load_example(name: str) -> ModuleType:
    pytest.importorskip("lightning")  # the [lightning] extra; CI installs it
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("method", "options"), [("uw", {}), ("famo", {}), ("pcgrad", {}), ("nashmtl", {}), ("mgda_ub", {})]
)
def test_lightning_trains_like_the_plain_step_loop(method: str, options: dict) -> None:
    import lightning as L

    example = _load_example("lightning_uwso")
    torch.manual_seed(0)
    data = datasets.create("multifashion", num_train=96, num_val=16, num_test=16)
    model = models.create("multilenet", heads={name: task.head for name, task in data.tasks.items()})
    reference_model = copy.deepcopy(model)
    loader = DataLoader(data.train, batch_size=32, shuffle=False)

    torch.manual_seed(1)
    module = example.MultiTaskLightning(model, data.tasks, method, options, lr=1e-2)
    assert module.automatic_optimization == (module.method.kind == "loss weighting")
    L.Trainer(
        accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, loader)

    torch.manual_seed(1)
    reference = methods.create(method, data.tasks, **options)
    optimizer = torch.optim.Adam(
        [{"params": list(reference_model.parameters())}, {"params": list(reference.parameters()), "weight_decay": 0.0}],
        lr=1e-2,
    )
    for inputs, targets in loader:
        optimizer.zero_grad()
        representation = reference_model.shared(inputs)
        predictions = reference_model.decode(representation)
        losses = [task.loss(predictions[name], targets[name]) for name, task in data.tasks.items()]
        reference.step(losses, shared_parameters=reference_model.shared_parameters(), representation=representation)
        optimizer.step()
        if reference.needs_losses_after_step:
            with torch.no_grad():
                after = reference_model(inputs)
            reference.after_step(torch.stack([t.loss(after[n], targets[n]) for n, t in data.tasks.items()]))

    for (name, trained), expected in zip(module.model.state_dict().items(), reference_model.state_dict().values(),
                                         strict=True):
        torch.testing.assert_close(trained, expected, msg=f"{method}: {name} differs from the plain loop")
    torch.testing.assert_close(module.method.last_weights, reference.last_weights)


def test_the_own_loop_example_trains_a_method_s_parameters_and_feeds_its_hooks() -> None:
    spec = importlib.util.spec_from_file_location("own_loop", EXAMPLES / "own_loop.py")
    assert spec is not None and spec.loader is not None
    own_loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(own_loop)
    torch.set_num_threads(1)
    # UW's log-variances start at 0; they move only if the loop gave them to the optimizer.
    uw = own_loop.train("uw", {}, epochs=1, num_train=256)["method"]
    assert all(bool(p.detach().abs().sum() > 0) for p in uw.parameters()) and list(uw.parameters())
    # FAMO's weights leave uniform only through after_step, the hook the loop must call.
    famo = own_loop.train("famo", {}, epochs=1, num_train=256)
    assert not torch.allclose(famo["weights"], torch.full((2,), 0.5))
    # DWA's weights leave 1 only from the third epoch on, through end_epoch.
    dwa = own_loop.train("dwa", {}, epochs=3, num_train=256)
    assert not torch.allclose(dwa["weights"], torch.ones(2))
