"""The training loop end to end on a tiny synthetic problem: determinism, resume, logging, STL and methods."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_problem import Synthetic, config, synthetic_data

from taskbalance.data.base import MultiTaskData
from taskbalance.training import ConfigError, train


def test_identical_runs_give_identical_metrics() -> None:
    first = train(config(method="rlw"), data=synthetic_data())
    second = train(config(method="rlw"), data=synthetic_data())
    assert [e.val for e in first.epochs] == [e.val for e in second.epochs]
    assert first.step_weights == second.step_weights
    other_seed = train(config(method="rlw", seed=1), data=synthetic_data())
    assert [e.val for e in other_seed.epochs] != [e.val for e in first.epochs]


def test_training_learns_and_logs_every_step() -> None:
    result = train(config(method="uwso", method_options={"temperature": 1.0}), data=synthetic_data())
    assert result.tasks == ["cls", "reg"]
    assert [e.epoch for e in result.epochs] == [1, 2, 3]
    assert result.steps == list(range(3 * 6))  # 96 samples / batch 16 = 6 steps per epoch
    assert all(len(w) == 2 and abs(sum(w) - 1) < 1e-5 for w in result.step_weights)
    losses = [e.train_losses["cls"] for e in result.epochs]
    assert losses[-1] < losses[0]
    assert set(result.epochs[0].val) == set(result.epochs[0].test) == {"cls/accuracy", "reg/mae", "reg/rmse"}
    assert result.higher_is_better["cls/accuracy"] is True and result.higher_is_better["reg/mae"] is False
    assert result.ms_per_step > 0 and result.cpu_seconds > 0 and result.peak_memory_mb > 0


class _KilledError(Exception):
    pass


@pytest.mark.parametrize("log_every", [1, 4])
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path, log_every: int) -> None:
    run = config(method="dwa", epochs=4, log_every=log_every)
    uninterrupted = train(run, data=synthetic_data())

    def die_after_epoch_2(record: object) -> None:
        if record.epoch == 2:  # type: ignore[attr-defined]
            raise _KilledError

    with pytest.raises(_KilledError):
        train(run, data=synthetic_data(), checkpoint_dir=tmp_path, on_epoch=die_after_epoch_2)
    checkpoint = tmp_path / f"{run.run_id()}.pt"
    assert checkpoint.exists()
    assert torch.load(checkpoint, weights_only=True)["records"][-1]["epoch"] == 2

    seen: list[int] = []
    resumed = train(run, data=synthetic_data(), checkpoint_dir=tmp_path, on_epoch=lambda r: seen.append(r.epoch))
    assert seen == [3, 4]  # epochs 1-2 were not trained again
    assert [e.val for e in resumed.epochs] == [e.val for e in uninterrupted.epochs]
    assert resumed.step_weights == uninterrupted.step_weights  # DWA's epoch history survived the resume
    assert resumed.steps == uninterrupted.steps == list(range(0, 4 * 6, log_every))
    assert not checkpoint.exists()


def test_sgd_trains_with_momentum_and_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    from taskbalance.training.build import build
    from taskbalance.training.loop import _initial_state

    run = config(method="uw", epochs=3, optimizer="sgd", momentum=0.9, lr=0.05)
    _, model, method = build(run, synthetic_data(), sync_across_ranks=False)
    state = _initial_state(run, model, method)
    assert isinstance(state.optimizer, torch.optim.SGD)
    model_group, method_group = state.optimizer.param_groups
    assert (model_group["momentum"], model_group["weight_decay"]) == (0.9, run.weight_decay)
    assert method_group["weight_decay"] == 0.0 and len(method_group["params"]) == 1  # UW's log-variances

    uninterrupted = train(run, data=synthetic_data())
    adam = train(run.replace(optimizer="adam", momentum=0.0), data=synthetic_data())
    assert [e.val for e in uninterrupted.epochs] != [e.val for e in adam.epochs]
    losses = [e.train_losses["cls"] for e in uninterrupted.epochs]
    assert losses[-1] < losses[0]

    def die_after_epoch_1(record: object) -> None:
        if record.epoch == 1:  # type: ignore[attr-defined]
            raise _KilledError

    with pytest.raises(_KilledError):
        train(run, data=synthetic_data(), checkpoint_dir=tmp_path, on_epoch=die_after_epoch_1)
    resumed = train(run, data=synthetic_data(), checkpoint_dir=tmp_path)  # the momentum buffers come back too
    assert [e.val for e in resumed.epochs] == [e.val for e in uninterrupted.epochs]


def test_single_task_run_uses_only_its_head() -> None:
    result = train(config(tasks=["reg"]), data=synthetic_data())
    assert result.tasks == ["reg"] and set(result.epochs[0].val) == {"reg/mae", "reg/rmse"}


def test_bad_config_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"tasks: .*no task"):
        train(config(tasks=["depth"]), data=synthetic_data())
    with pytest.raises(ConfigError, match="method: unknown method 'nope'"):
        train(config(method="nope"), data=synthetic_data())
    with pytest.raises(ConfigError, match="model: unknown model"):
        train(config(model="nope"), data=synthetic_data())
    with pytest.raises(ConfigError, match="method_options"):
        train(config(method="uwso", method_options={"temprature": 1.0}), data=synthetic_data())


@pytest.mark.parametrize(
    "options",
    [{}, {"mode": "representation"}, {"weighting": "uwso", "weighting_options": {"temperature": 1.0}}],
    ids=["parameters", "representation", "with-uwso"],
)
def test_gradient_methods_train_through_the_loop(options: dict) -> None:
    result = train(config(method="pcgrad", method_options=options, epochs=2), data=synthetic_data())
    losses = [e.train_losses["cls"] for e in result.epochs]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    if "weighting" in options:  # UW-SO's weights scale the task gradients, so the updates differ from plain PCGrad
        plain = train(config(method="pcgrad", epochs=2), data=synthetic_data())
        assert result.step_weights[0] != plain.step_weights[0]
        assert [e.val for e in result.epochs] != [e.val for e in plain.epochs]


def test_composition_errors_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown weighting 'nope'"):
        train(config(method="pcgrad", method_options={"weighting": "nope"}), data=synthetic_data())
    with pytest.raises(ConfigError, match="only gradient methods compose"):
        train(config(method="ew", method_options={"weighting": "uwso"}), data=synthetic_data())


def test_a_last_batch_of_one_sample_is_dropped_and_other_remainders_are_kept() -> None:
    full = synthetic_data()
    for n, steps in ((97, 6), (98, 7)):  # batch 16: 6 full batches, then 1 (dropped) or 2 (kept) samples
        data = MultiTaskData("synthetic", Synthetic(n, 0), full.val, full.test, full.tasks, full.input_shape)
        result = train(config(epochs=1), data=data)
        assert len(result.steps) == steps


@pytest.mark.parametrize(
    ("method", "options"), [("famo", {}), ("pcgrad", {"weighting": "famo"})], ids=["famo", "pcgrad+famo"]
)
def test_famo_gets_the_same_batch_losses_after_every_step(method: str, options: dict) -> None:
    # FAMO(same_batch=True) raises on its second call unless the loop passed it the post-step losses in between.
    result = train(config(method=method, method_options=options, epochs=2), data=synthetic_data())
    assert len(result.steps) == 12
    assert result.step_weights[0] != result.step_weights[-1]  # the logits moved


def test_the_loop_drives_stch_warm_up_and_sets_the_nadir_from_the_last_warm_up_epoch() -> None:
    result = train(config(method="stch", method_options={"warmup_epochs": 1}, epochs=2), data=synthetic_data())
    weights, losses = torch.tensor(result.step_weights), torch.tensor(result.step_losses)
    warm_up, after = slice(0, 6), slice(6, 12)  # 96 samples, batch 16: 6 steps per epoch
    torch.testing.assert_close(weights[warm_up], losses[warm_up].reciprocal())  # ∂Σ log L_k/∂L_k
    nadir = torch.tensor([result.epochs[0].train_losses[name] for name in ("cls", "reg")])
    expected = torch.softmax((losses[after] / nadir).log(), dim=1) / losses[after]  # μ = 1, λ = 1
    torch.testing.assert_close(weights[after], expected, rtol=1e-4, atol=1e-6)


def test_labels_the_loss_cannot_learn_from_fail_before_the_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskbalance.weighting import EW

    full = synthetic_data()
    counted_from_one = Synthetic(96, 0)
    counted_from_one.cls = counted_from_one.cls + 1  # labels 1..3 for classes 0..2
    counted_from_one.cls[::2] = 3  # so that the first batch surely holds an out-of-range label
    data = MultiTaskData("synthetic", counted_from_one, full.val, full.test, full.tasks, full.input_shape)
    steps: list[int] = []
    monkeypatch.setattr(EW, "step", lambda self, *args, **kwargs: steps.append(1))
    with pytest.raises(ValueError, match=r"task 'cls': target label 3 is outside \[0, 3\)"):
        train(config(epochs=1), data=data)
    assert steps == []


@pytest.mark.parametrize(("method", "options"), [("famo", {}), ("pcgrad", {"weighting": "famo"})])
def test_an_after_step_without_the_applied_keyword_still_runs_in_fp32(
    monkeypatch: pytest.MonkeyPatch, method: str, options: dict
) -> None:
    from taskbalance.weighting import FAMO

    calls: list[int] = []

    def old_signature(self: FAMO, losses: torch.Tensor) -> None:  # as written before `applied` existed
        calls.append(1)
        self.update(losses)

    monkeypatch.setattr(FAMO, "after_step", old_signature)
    train(config(method=method, method_options=options, epochs=1), data=synthetic_data())
    assert len(calls) == 6


def test_batch_averaged_metrics_follow_the_evaluation_batch_size_and_split_ones_do_not() -> None:
    from taskbalance.tasks import Depth
    from taskbalance.training.loop import evaluate

    class DepthSplit(torch.utils.data.Dataset):
        """Five 1×1×4 depth maps with 4, 3, 2, 1 and 4 valid pixels of growing error."""

        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            valid = (4, 3, 2, 1, 4)[i]
            target = torch.tensor([0.0] * (4 - valid) + [1.0] * valid)  # 0 = no depth
            return torch.full((1, 1, 4), float(i + 1)), {"depth": target.reshape(1, 1, 4)}

    class Identity(torch.nn.Module):
        def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"depth": inputs}

    model, cpu = Identity(), torch.device("cpu")
    split, batch = {"depth": Depth("depth")}, {"depth": Depth("depth", averaging="batch")}
    by_size = {size: (evaluate(model, split, DepthSplit(), size, cpu)["depth/abs_err"],  # type: ignore[arg-type]
                      evaluate(model, batch, DepthSplit(), size, cpu)["depth/abs_err"])  # type: ignore[arg-type]
               for size in (1, 2, 5)}
    # Errors i per valid pixel (prediction i + 1, target 1): pixel mean (0·4 + 1·3 + 2·2 + 3·1 + 4·4) / 14 = 26/14.
    assert all(values[0] == pytest.approx(26 / 14) for values in by_size.values())
    assert by_size[1][1] == pytest.approx((0 + 1 + 2 + 3 + 4) / 5)  # the mean of per-image means
    assert by_size[2][1] == pytest.approx((3 / 7 + 7 / 3 + 4) / 3)  # batches {0,1}, {2,3}, {4}
    assert by_size[5][1] == pytest.approx(26 / 14)  # one batch holds the split: the two conventions agree


def test_nashmtl_fallbacks_are_counted_in_the_result_and_a_step_with_a_zero_gradient_raises_by_default() -> None:
    from torch import nn

    from taskbalance.models import MODELS
    from taskbalance.models.base import MultiTaskModel

    class ConstantHead(nn.Module):
        """A head that ignores the representation: its task's gradient on the shared encoder is exactly zero."""

        def __init__(self) -> None:
            super().__init__()
            self.value = nn.Parameter(torch.zeros(1))

        def forward(self, representation: torch.Tensor) -> torch.Tensor:
            return self.value.expand(representation.shape[0], 1)

    @MODELS.register("tiny_test_constant_reg_head")
    def constant_reg_head(heads: dict, in_channels: int = 1) -> MultiTaskModel:
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(16 * in_channels, 12), nn.ReLU())
        return MultiTaskModel(encoder, {"cls": nn.Linear(12, 3), "reg": ConstantHead()})

    run = config(model="tiny_test_constant_reg_head", method="nashmtl", epochs=2)
    failed = train(run.replace(method_options={"on_solve_failure": "keep_previous"}), data=synthetic_data())
    assert failed.method_diagnostics == {"solve_failures": 12.0}  # every step: 2 epochs × 6
    with pytest.raises(ValueError, match=r"NashMTL: the gradient of task 1 \(.reg.\) is zero"):
        train(run, data=synthetic_data())
    assert train(config(method="ew", epochs=1), data=synthetic_data()).method_diagnostics == {}


def test_method_lr_gives_the_methods_own_parameters_their_rate_on_the_same_schedule() -> None:
    from taskbalance.training.build import build
    from taskbalance.training.loop import _initial_state

    run = config(method="uw", method_lr=0.025, lr_step=1, lr_gamma=0.5)
    _, model, method = build(run, synthetic_data(), sync_across_ranks=False)
    state = _initial_state(run, model, method)
    model_group, method_group = state.optimizer.param_groups
    assert (model_group["lr"], method_group["lr"]) == (run.lr, 0.025)
    state.optimizer.step()  # (no gradients: moves nothing) the order PyTorch expects before the schedule's step
    state.scheduler.step()
    assert (model_group["lr"], method_group["lr"]) == (run.lr / 2, 0.0125)
    default = _initial_state(config(method="uw"), *build(config(method="uw"), synthetic_data(),
                                                         sync_across_ranks=False)[1:])
    assert default.optimizer.param_groups[1]["lr"] == config().lr


def test_method_lr_is_refused_for_a_method_with_undeclared_parameters_of_its_own() -> None:
    from torch import nn

    from taskbalance.weighting import EW

    class LearnsButDoesNotSay(EW):
        def __init__(self, num_tasks: int, **common: object) -> None:
            super().__init__(num_tasks, **common)
            self.scale = nn.Parameter(torch.ones(()))

    from taskbalance.training.build import build
    from taskbalance.training.loop import _initial_state

    run = config(method="ew", method_lr=0.025)
    _, model, _ = build(run, synthetic_data(), sync_across_ranks=False)
    with pytest.raises(ConfigError, match="method_lr: method 'ew' has parameters of its own but does not declare"):
        _initial_state(run, model, LearnsButDoesNotSay(2))
    _initial_state(run, model, EW(2))  # no parameters: method_lr has nothing to do, nothing to refuse
