"""Every registered method, alone and composed with RLW, resumes from a checkpoint to the uninterrupted result.

The method's whole state (parameters, buffers, random generators, counters, a nested weighting's state) must travel
in ``method.state_dict()``: the checkpoint holds nothing else of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_problem import config, synthetic_data

from taskbalance import methods
from taskbalance.aggregation import AGGREGATIONS
from taskbalance.training import RunConfig, train

CASES = [(name, {}) for name in methods.names()] + [(name, {"weighting": "rlw"}) for name in AGGREGATIONS.names()]
# Options that change what the method keeps as its state.
CASES += [("gradnorm", {"weights": "softmax"}), ("nashmtl", {"on_solve_failure": "keep_previous"})]


class _KilledError(Exception):
    pass


def _interrupted_then_resumed(run: RunConfig, folder: Path, kill_after: int) -> object:
    def die(record: object) -> None:
        if record.epoch == kill_after:  # type: ignore[attr-defined]
            raise _KilledError

    with pytest.raises(_KilledError):
        train(run, data=synthetic_data(), checkpoint_dir=folder, on_epoch=die)
    return train(run, data=synthetic_data(), checkpoint_dir=folder)


@pytest.mark.parametrize(("name", "options"), CASES,
                         ids=[f"{n}+{'+'.join(map(str, o.values()))}" if o else n for n, o in CASES])
def test_a_killed_run_of_every_method_resumes_bit_identically(tmp_path: Path, name: str, options: dict) -> None:
    # STCH's warm-up and DWA's history span the kill; FAMO updates after every step.
    extra = {"warmup_epochs": 1} if name == "stch" else {}
    run = config(method=name, method_options={**options, **extra}, epochs=3)
    uninterrupted = train(run, data=synthetic_data())
    resumed = _interrupted_then_resumed(run, tmp_path, kill_after=1)
    assert [e.val for e in resumed.epochs] == [e.val for e in uninterrupted.epochs]  # type: ignore[attr-defined]
    assert resumed.step_weights == uninterrupted.step_weights  # type: ignore[attr-defined]
    assert resumed.step_losses == uninterrupted.step_losses  # type: ignore[attr-defined]
