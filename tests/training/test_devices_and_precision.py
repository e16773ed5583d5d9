"""Devices (resolution, errors, identity) and mixed precision (bf16 autocast, fp16 loss scaling) on this CPU."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from tiny_problem import config, synthetic_data
from torch import nn

from taskbalance import methods
from taskbalance.training import ConfigError, RunConfig, train
from taskbalance.training.devices import DeviceError, available_devices, determinism, resolve_device


def test_auto_resolves_to_the_cpu_here_and_missing_devices_are_named() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert "cpu" in available_devices()
    with pytest.raises(DeviceError, match=r"device 'cuda:3' is not available here; available: cpu"):
        resolve_device("cuda:3")


@pytest.mark.parametrize(("field", "value"), [("device", "gpu"), ("device", "cuda:x"), ("precision", "fp8"),
                                              ("deterministic", "yes")])
def test_bad_device_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        RunConfig(**{field: value})


def test_device_and_determinism_are_not_part_of_the_identity_but_precision_is() -> None:
    base = RunConfig()
    assert RunConfig(device="cpu", deterministic=True, data_on_device=True).run_id() == base.run_id()
    assert RunConfig(precision="bf16").run_id() != base.run_id()
    # The fp32 default leaves ids of runs stored before these fields existed unchanged.
    later = ("precision", "device", "deterministic", "loader_workers", "data_on_device", "optimizer", "momentum",
             "method_lr")
    old_fields = {k: v for k, v in base.to_dict().items() if k not in later}
    canonical = json.dumps(old_fields, sort_keys=True, separators=(",", ":"))
    assert base.run_id() == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_a_result_records_where_it_trained() -> None:
    result = train(config(epochs=1), data=synthetic_data())
    assert result.environment["device"] == "cpu"
    assert result.environment["torch"] == torch.__version__


@pytest.mark.parametrize(
    ("method", "options"),
    [("uwso", {}), ("pcgrad", {"mode": "parameters"}), ("pcgrad", {"mode": "representation"}), ("famo", {})],
)
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_every_kind_with_finite_metrics_and_float32_weights(
    method: str, options: dict, precision: str
) -> None:
    result = train(config(method=method, method_options=options, precision=precision), data=synthetic_data())
    assert all(math.isfinite(v) for epoch in result.epochs for v in epoch.val.values())
    assert all(math.isfinite(w) for row in result.step_weights for w in row)
    fp32 = train(config(method=method, method_options=options), data=synthetic_data())
    assert result.run_id != fp32.run_id
    assert result.epochs[-1].val != fp32.epochs[-1].val  # the forward really ran in half precision


def test_losses_reach_the_method_in_float32_under_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.dtype] = []
    cls = methods.method_class("uwso")
    original = cls.forward

    def spy(self: nn.Module, losses: torch.Tensor) -> torch.Tensor:
        seen.append(losses.dtype)
        return original(self, losses)

    monkeypatch.setattr(cls, "forward", spy)
    train(config(method="uwso", precision="bf16", epochs=1), data=synthetic_data())
    assert seen and set(seen) == {torch.float32}


def _tiny_step(method_name: str, options: dict, loss_scale: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    encoder, heads = nn.Linear(4, 5), nn.ModuleList([nn.Linear(5, 1), nn.Linear(5, 1)])
    method = methods.create(method_name, 2, **options)
    x = torch.randn(6, 4)
    rep = encoder(x)
    losses = [(heads[0](rep) - 1).pow(2).mean(), heads[1](rep).abs().mean()]
    method.step(losses, shared_parameters=encoder.parameters(), representation=rep, loss_scale=loss_scale)
    grads = {f"encoder.{n}": p.grad for n, p in encoder.named_parameters()}
    grads.update({f"heads.{n}": p.grad for n, p in heads.named_parameters()})
    # The method's own parameters too (UW's log-variances, GradNorm's weights): the optimizer steps them as well, so
    # GradScaler divides their .grad by the scale like every other.
    grads.update({f"method.{n}": p.grad for n, p in method.named_parameters() if p.grad is not None})
    return grads, method.last_weights


@pytest.mark.parametrize(
    ("method", "options"),
    [("nashmtl", {"max_norm": 0.0}), ("nashmtl", {}), ("cagrad", {}), ("dbmtl", {}), ("gradnorm", {}),
     ("mgda", {"mode": "representation"}), ("uw", {}), ("famo", {"same_batch": False}),
     ("pcgrad", {"weighting": "uw"}), ("mgda", {"weighting": "imtll", "mode": "representation"})],
)
def test_a_scaled_step_is_the_unscaled_step_times_the_scale(method: str, options: dict) -> None:
    # Several methods are not scale-invariant: they must aggregate the unscaled gradients, and every .grad must hold
    # scale × the unscaled update for GradScaler to divide out.
    reference, weights = _tiny_step(method, options, 1.0)
    scaled, scaled_weights = _tiny_step(method, options, 1024.0)
    torch.testing.assert_close(scaled_weights, weights)
    assert scaled.keys() == reference.keys()
    for name, grad in reference.items():
        torch.testing.assert_close(scaled[name] / 1024.0, grad, rtol=1e-5, atol=1e-7, msg=name)


def test_an_overflowing_scaled_step_never_reaches_the_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    solver_calls: list[int] = []
    cls = methods.method_class("nashmtl")
    original = cls.coefficients
    monkeypatch.setattr(cls, "coefficients", lambda self, gram: solver_calls.append(1) or original(self, gram))
    grads, _ = _tiny_step("nashmtl", {"max_norm": 0.0}, 1e39)  # float32 overflow in the scaled backward
    assert solver_calls == []
    assert all(torch.isinf(grads[name]).all() for name in ("encoder.weight", "encoder.bias"))


def test_an_overflow_in_a_head_alone_skips_the_step_without_advancing_the_method() -> None:
    # Huge head inputs and tiny head weights: the head's weight gradient overflows at this scale, the shared one not.
    torch.manual_seed(0)
    encoder, heads = nn.Linear(4, 5), nn.ModuleList([nn.Linear(5, 1), nn.Linear(5, 1)])
    with torch.no_grad():
        encoder.weight.fill_(1e3)
        for head in heads:
            head.weight.fill_(1e-3)
    method = methods.create("dbmtl", 2)
    rep = encoder(torch.ones(6, 4))
    losses = [(heads[0](rep) - 1).pow(2).mean(), heads[1](rep).abs().mean()]
    method.step(losses, shared_parameters=encoder.parameters(), loss_scale=1e37)
    assert not torch.isfinite(heads[0].weight.grad).all()
    assert method.steps == 0 and method.ema_gradients == []  # its running average did not see the skipped step
    assert torch.isinf(encoder.weight.grad).all()  # so that the GradScaler skips the step


def test_famo_learns_nothing_from_a_step_the_scaler_skipped() -> None:
    famo = methods.create("famo", 2)
    famo(torch.tensor([1.0, 2.0]))
    before = {name: value.clone() for name, value in famo.state_dict().items() if isinstance(value, torch.Tensor)}
    famo.after_step(torch.tensor([0.5, 2.0]), applied=torch.tensor(False))
    for name, value in before.items():
        assert torch.equal(famo.state_dict()[name], value), name
    famo(torch.tensor([1.0, 2.0]))  # the skipped step's measurement is consumed: the next step may follow
    famo.after_step(torch.tensor([0.5, 2.0]), applied=torch.tensor(True))
    assert famo.updates.item() == 1 and famo.logits[1] > famo.logits[0]


def test_the_loop_tells_famo_which_fp16_steps_were_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = methods.method_class("famo")
    step, after_step = cls.step, cls.after_step
    calls: list[bool] = []
    seen: list[nn.Module] = []

    def overflow_first_step(self: nn.Module, losses: object, **kwargs: object) -> None:
        step(self, losses, **kwargs)
        if not calls:
            shared = list(kwargs["shared_parameters"])  # type: ignore[call-overload]
            shared[0].grad.fill_(math.inf)

    def spy(self: nn.Module, losses: torch.Tensor, *, applied: bool | torch.Tensor = True) -> None:
        calls.append(bool(applied))
        seen.append(self)
        after_step(self, losses, applied=applied)

    monkeypatch.setattr(cls, "step", overflow_first_step)
    monkeypatch.setattr(cls, "after_step", spy)
    result = train(config(method="famo", precision="fp16", epochs=1), data=synthetic_data())
    assert calls[0] is False and all(calls[1:]) and len(calls) == 6
    assert seen[-1].updates.item() == len(calls) - 1  # type: ignore[operator]
    assert all(math.isfinite(w) for row in result.step_weights for w in row)


def test_an_fp16_run_resumes_with_its_loss_scale(tmp_path: Path) -> None:
    run = config(method="pcgrad", precision="fp16", epochs=3)
    uninterrupted = train(run, data=synthetic_data())

    def die(record: object) -> None:
        if record.epoch == 1:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(run, data=synthetic_data(), checkpoint_dir=tmp_path, on_epoch=die)
    resumed = train(run, data=synthetic_data(), checkpoint_dir=tmp_path)
    assert [e.val for e in resumed.epochs] == [e.val for e in uninterrupted.epochs]


def test_train_refuses_a_missing_device_naming_the_flag(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from taskbalance.cli import main

    config_file = tmp_path / "run.toml"
    config_file.write_text('method = "ew"\nepochs = 1\n')
    result = CliRunner().invoke(main, ["train", str(config_file), "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "--device: device 'cuda' is not available here; available: cpu" in result.output
    config_file.write_text('method = "ew"\nepochs = 1\ndevice = "mps"\n')
    result = CliRunner().invoke(main, ["train", str(config_file)])
    assert result.exit_code == 2, result.output
    assert "device: device 'mps' is not available here" in result.output


@pytest.mark.parametrize(("method", "options"), [("uwso", {}), ("rlw", {}), ("pcgrad", {"mode": "representation"})])
def test_data_on_the_device_gives_the_same_run(method: str, options: dict) -> None:
    tiny = {"num_train": 200, "num_val": 48, "num_test": 48}
    run = RunConfig(method=method, method_options=options, epochs=2, batch_size=64, eval_batch_size=32,
                    dataset_options=tiny)
    resident = run.replace(data_on_device=True)
    assert resident.run_id() == run.run_id()
    a, b = train(run), train(resident)
    assert [e.val for e in a.epochs] == [e.val for e in b.epochs]
    assert [e.test for e in a.epochs] == [e.test for e in b.epochs]
    assert a.step_weights == b.step_weights and a.step_losses == b.step_losses


def test_data_on_the_device_needs_a_split_held_as_tensors() -> None:
    with pytest.raises(ConfigError, match=r"data_on_device: the train split of dataset 'synthetic'"):
        train(config(data_on_device=True), data=synthetic_data())


def test_loader_workers_enter_the_identity_only_when_used() -> None:
    assert RunConfig(loader_workers=0).run_id() == RunConfig().run_id()
    assert RunConfig(loader_workers=2).run_id() != RunConfig().run_id()
    with pytest.raises(ConfigError, match="loader_workers"):
        RunConfig(loader_workers=-1)


def test_deterministic_kernels_last_only_as_long_as_the_run_that_asked_for_them() -> None:
    cuda = torch.device("cuda")  # the settings are process-wide flags: checkable without a GPU
    assert not torch.are_deterministic_algorithms_enabled()
    with determinism(cuda, True):
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled()  # the next run in this worker is not held to them
    torch.use_deterministic_algorithms(True)  # set by the user's own program: left as it was
    try:
        with determinism(cuda, False):
            assert torch.are_deterministic_algorithms_enabled()
        with determinism(cuda, True):
            pass
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    with determinism(torch.device("cpu"), True):
        assert not torch.are_deterministic_algorithms_enabled()  # bit-identical on CPU without them
