"""A diverged run fails with a message naming where; checkpoints of other runs and stale temporaries are handled."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tiny_problem import Synthetic, config, synthetic_data

from taskbalance import methods
from taskbalance.data.base import MultiTaskData
from taskbalance.training import TrainingDivergedError, train
from taskbalance.training.checkpoint import CheckpointError, save_atomically


def _with_bad_target(split: str, sample: int, value: float) -> MultiTaskData:
    data = synthetic_data()
    poisoned = Synthetic(len(getattr(data, split)), {"train": 0, "val": 1, "test": 2}[split])
    poisoned.reg[sample] = value
    parts = {"train": data.train, "val": data.val, "test": data.test, split: poisoned}
    return MultiTaskData("synthetic", parts["train"], parts["val"], parts["test"], data.tasks, data.input_shape)


@pytest.mark.parametrize(
    ("method", "options"),
    [("ew", {}), ("uwso", {}), ("pcgrad", {}), ("mgda_ub", {}), ("cagrad", {"mode": "representation"}), ("famo", {})],
)
def test_a_non_finite_training_loss_fails_the_run_naming_epoch_step_task_and_value(method: str, options: dict) -> None:
    # One batch per epoch holding every sample: the poisoned sample is in step 0 of epoch 1.
    data = _with_bad_target("train", 5, math.nan)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 1, step 0: the loss of task 'reg' is nan"):
        train(config(method=method, method_options=options, batch_size=96), data=data)


def test_an_infinite_loss_later_in_training_names_that_step() -> None:
    data = _with_bad_target("train", 0, math.inf)
    # 96 samples in batches of 96: one step per epoch, so the first step is step 0 of epoch 1 whatever the order.
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step 0: the loss of task 'reg' is inf"):
        train(config(batch_size=96), data=data)


def test_a_non_finite_metric_fails_the_run_naming_the_split_and_metric() -> None:
    data = _with_bad_target("val", 3, math.inf)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1: val metrics \{'reg/mae': inf, 'reg/rmse': inf\}"):
        train(config(), data=data)


def test_a_checkpoint_of_another_run_is_refused_naming_the_file(tmp_path: Path) -> None:
    run, other = config(method="ew"), config(method="uwo")
    with pytest.raises(RuntimeError):  # stop the other run after epoch 1, leaving its checkpoint
        train(other, data=synthetic_data(), checkpoint_dir=tmp_path, on_epoch=_raise)
    misplaced = tmp_path / f"{run.run_id()}.pt"
    (tmp_path / f"{other.run_id()}.pt").rename(misplaced)
    with pytest.raises(CheckpointError, match=rf"checkpoint {misplaced} belongs to run '{other.run_id()}'.*delete it"):
        train(run, data=synthetic_data(), checkpoint_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a checkpoint", "is unreadable"), ({"run_id": "x", "format": 1}, "has format 1")],
)
def test_a_corrupt_or_old_checkpoint_is_refused_naming_the_file(tmp_path: Path, content: object, message: str) -> None:
    run = config()
    path = tmp_path / f"{run.run_id()}.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        save_atomically({**content, "run_id": run.run_id()}, path)  # type: ignore[dict-item]
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} {message}"):
        train(run, data=synthetic_data(), checkpoint_dir=tmp_path)


def test_stale_temporaries_of_a_killed_checkpoint_write_are_removed_on_start(tmp_path: Path) -> None:
    run = config(epochs=1)
    stale = tmp_path / f".{run.run_id()}.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    someone_else = tmp_path / ".0123456789abcdef.pt.x.tmp"
    someone_else.write_bytes(b"another run's")
    train(run, data=synthetic_data(), checkpoint_dir=tmp_path)
    assert not stale.exists()
    assert someone_else.exists()


def test_a_checkpoint_is_loaded_through_the_device_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = config(epochs=2)
    with pytest.raises(RuntimeError):
        train(run, data=synthetic_data(), checkpoint_dir=tmp_path, on_epoch=_raise)
    seen: list[object] = []
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "load", spy)
    resumed = train(run, data=synthetic_data(), checkpoint_dir=tmp_path, device="cpu")
    assert seen == [torch.device("cpu")]
    assert [e.epoch for e in resumed.epochs] == [1, 2]


def _raise(record: object) -> None:
    raise RuntimeError("killed")


class _StateOnAnotherDevice:
    """An RNG state as a checkpoint loaded with ``map_location`` onto an accelerator gives it (not a CPU tensor)."""

    def __init__(self, state: torch.Tensor) -> None:
        self.state, self.moved_to = state, None

    def to(self, device: str, dtype: torch.dtype) -> torch.Tensor:
        self.moved_to = (device, dtype)
        return self.state.to(device, dtype)


@pytest.mark.parametrize("method", ["rlw", "pcgrad"])
def test_a_generator_state_mapped_to_another_device_is_brought_back_to_the_cpu(method: str) -> None:
    saved = methods.create(method, 2, seed=3)
    state = saved.state_dict()
    extra = next(key for key in state if key.endswith("_extra_state"))
    mapped = _StateOnAnotherDevice(state[extra]["generator"])
    state[extra] = {**state[extra], "generator": mapped}
    resumed = methods.create(method, 2, seed=4)
    resumed.load_state_dict(state)
    assert mapped.moved_to == ("cpu", torch.uint8)
    assert torch.equal(torch.rand(3, generator=resumed.generator), torch.rand(3, generator=saved.generator))
