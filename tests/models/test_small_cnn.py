"""multilenet and small_cnn: hand-counted sizes, head maths, forward/backward at MultiFashion's shapes, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taskbalance import models
from taskbalance.models.small_cnn import LowResDenseHead, VectorHead, build_multilenet, build_small_cnn
from taskbalance.types import HeadSpec

HEADS = {
    "left": HeadSpec(10, dense=False),
    "right": HeadSpec(10, dense=False),
    "depth": HeadSpec(1, dense=True, size=(9, 9)),
}


def count(parameters: object) -> int:
    return sum(p.numel() for p in parameters)  # type: ignore[attr-defined]


def test_multilenet_sizes_by_hand() -> None:
    model = build_multilenet(HEADS)
    conv1, conv2 = (5 * 5 * 1 + 1) * 10, (5 * 5 * 10 + 1) * 20
    assert count(model.shared_parameters()) == conv1 + conv2 == 5_280
    vector_head = (20 * 9 * 9 * 50 + 50) + (50 * 10 + 10)
    assert count(model.task_parameters("left")) == count(model.task_parameters("right")) == vector_head
    assert count(model.task_parameters("depth")) == 20 + 1
    assert count(model.parameters()) == 5_280 + 2 * vector_head + 21
    assert count(build_multilenet(HEADS, in_channels=3).shared_parameters()) == (5 * 5 * 3 + 1) * 10 + conv2


def test_small_cnn_sizes_by_hand() -> None:
    model = build_small_cnn(HEADS)
    # Three 3×3 convolutions without bias (BatchNorm follows) and BatchNorm's weight and bias.
    stages = [(1, 32), (32, 64), (64, 96)]
    assert count(model.shared_parameters()) == sum(9 * c_in * c_out + 2 * c_out for c_in, c_out in stages) == 74_400
    assert count(model.task_parameters("left")) == 96 * 3 * 3 * 10 + 10
    assert count(model.task_parameters("depth")) == 96 + 1
    assert 85_000 <= count(model.parameters()) <= 100_000


@pytest.mark.parametrize(("name", "channels"), [("multilenet", 20), ("small_cnn", 96)])
def test_forward_shapes_and_single_tensor_representation(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model = models.create(name, heads=HEADS, in_channels=1)
    x = torch.rand(4, 1, 36, 36)
    representation = model.shared(x)
    assert isinstance(representation, torch.Tensor) and representation.shape == (4, channels, 9, 9)
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"left": (4, 10), "right": (4, 10), "depth": (4, 1, 9, 9)}


@pytest.mark.parametrize("build", [build_multilenet, build_small_cnn])
def test_backward_reaches_every_parameter_and_heads_stay_separate(build: object) -> None:
    torch.manual_seed(0)
    model = build(HEADS)  # type: ignore[operator]
    x = torch.rand(6, 1, 36, 36)
    labels = torch.randint(0, 10, (6,))
    representation = model.shared(x)
    out = model.decode(representation)
    left_loss = nn.functional.cross_entropy(out["left"], labels)
    depth_loss = out["depth"].abs().mean()
    (grad_rep,) = torch.autograd.grad(left_loss, representation, retain_graph=True)
    assert grad_rep.shape == representation.shape and float(grad_rep.abs().sum()) > 0
    # The left loss does not depend on the depth head.
    depth_grads = torch.autograd.grad(left_loss, list(model.task_parameters("depth")), allow_unused=True)
    assert all(g is None for g in depth_grads)
    model.zero_grad()
    (left_loss + depth_loss + nn.functional.cross_entropy(out["right"], labels)).backward()
    for pname, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), pname
        assert float(parameter.grad.abs().sum()) > 0, pname


def test_dense_head_is_a_pixelwise_linear_map_resized_bilinearly() -> None:
    torch.manual_seed(1)
    representation = torch.randn(2, 5, 3, 3)
    same_size = LowResDenseHead(5, HeadSpec(2, dense=True, size=(3, 3)), (36, 36))
    weight, bias = same_size.project.weight[:, :, 0, 0], same_size.project.bias
    by_hand = torch.einsum("oc,bchw->bohw", weight, representation) + bias[None, :, None, None]
    torch.testing.assert_close(same_size(representation), by_hand)
    # Up-sampling a constant map by bilinear interpolation keeps it constant.
    constant = LowResDenseHead(5, HeadSpec(1, dense=True, size=(7, 5)), (36, 36))
    nn.init.zeros_(constant.project.weight)
    nn.init.constant_(constant.project.bias, 0.25)
    out = constant(representation)
    assert out.shape == (2, 1, 7, 5) and torch.allclose(out, torch.full_like(out, 0.25))
    # Without a size the head predicts at the input size.
    assert LowResDenseHead(5, HeadSpec(1, dense=True), (12, 10))(representation).shape == (2, 1, 12, 10)


def test_vector_head_without_pooling_is_a_linear_map_of_the_flattened_features() -> None:
    torch.manual_seed(2)
    representation = torch.randn(3, 4, 2, 2)
    head = VectorHead(4, 2, 5)
    linear = head.layers[-1]
    assert isinstance(linear, nn.Linear)
    torch.testing.assert_close(head(representation), representation.flatten(1) @ linear.weight.T + linear.bias)
    pooled = VectorHead(4, 1, 5)
    linear = pooled.layers[-1]
    assert isinstance(linear, nn.Linear)
    torch.testing.assert_close(pooled(representation), representation.mean(dim=(2, 3)) @ linear.weight.T + linear.bias)


def test_other_input_sizes_and_channels() -> None:
    model = build_multilenet({"a": HeadSpec(3, dense=False), "map": HeadSpec(2, dense=True)}, 3, input_size=(28, 28))
    out = model(torch.rand(2, 3, 28, 28))
    assert out["a"].shape == (2, 3) and out["map"].shape == (2, 2, 28, 28)
    assert model.shared(torch.rand(1, 3, 28, 28)).shape == (1, 20, 7, 7)


def test_bad_heads_raise_naming_model_and_head() -> None:
    with pytest.raises(TypeError, match=r"multilenet: head 'left' must be a HeadSpec, got dict"):
        build_multilenet({"left": {"out_channels": 10}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="small_cnn: needs at least one head"):
        build_small_cnn({})
    with pytest.raises(ValueError, match=r"head 'depth' has an invalid size \(0, 9\)"):
        build_small_cnn({"depth": HeadSpec(1, dense=True, size=(0, 9))})
    with pytest.raises(ValueError, match=r"input_size must be \(H, W\) >= 1, got \(36,\)"):
        build_small_cnn(HEADS, input_size=(36,))  # type: ignore[arg-type]


def test_registered() -> None:
    assert "multilenet" in models.MODELS and "small_cnn" in models.MODELS
    assert models.MODELS.get("multilenet") is build_multilenet and models.MODELS.get("small_cnn") is build_small_cnn


@pytest.mark.parametrize("build", [build_multilenet, build_small_cnn])
def test_channels_last_is_the_same_model_in_another_memory_format(build: object) -> None:
    torch.manual_seed(0)
    plain = build(HEADS)  # type: ignore[operator]
    torch.manual_seed(0)
    fast = build(HEADS, channels_last=True)  # type: ignore[operator]
    assert plain.state_dict().keys() == fast.state_dict().keys()  # checkpoints keep their parameter names
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), fast.state_dict().values(), strict=True))
    convolutions = [p for p in fast.shared_parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)
    x = torch.rand(4, 1, 36, 36)
    expected, got = plain(x), fast(x)
    for name in HEADS:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="channels_last must be true or false"):
        build(HEADS, channels_last="yes")  # type: ignore[operator]


def test_a_channels_last_run_trains_and_resumes_bit_identically(tmp_path: object) -> None:
    from taskbalance.training import RunConfig, train

    run = RunConfig(dataset="multifashion", dataset_options={"num_train": 48, "num_val": 16, "num_test": 16},
                    model="small_cnn", model_options={"channels_last": True}, tasks=["left", "right", "depth"],
                    method="uwso", method_options={"temperature": 2.0}, epochs=3, batch_size=16)
    assert run.run_id() != RunConfig(**{**run.to_dict(), "model_options": {}}).run_id()  # part of the identity
    uninterrupted = train(run)

    class KilledError(Exception):
        pass

    def die_after_epoch_2(record: object) -> None:
        if record.epoch == 2:  # type: ignore[attr-defined]
            raise KilledError

    with pytest.raises(KilledError):
        train(run, checkpoint_dir=tmp_path, on_epoch=die_after_epoch_2)
    resumed = train(run, checkpoint_dir=tmp_path)
    assert [e.val for e in resumed.epochs] == [e.val for e in uninterrupted.epochs]
    assert all(torch.isfinite(torch.tensor(list(e.val.values()))).all() for e in resumed.epochs)


@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_per_task_parameter_gradients_are_the_same_in_channels_last(strategy: str) -> None:
    from taskbalance.training import RunConfig, train

    runs = [RunConfig(dataset="multifashion", dataset_options={"num_train": 32, "num_val": 16, "num_test": 16},
                      model="small_cnn", model_options={"channels_last": layout}, tasks=["left", "right", "depth"],
                      method="pcgrad", method_options={"mode": "parameters", "strategy": strategy}, epochs=1,
                      batch_size=16) for layout in (False, True)]
    plain, fast = (train(run) for run in runs)
    for key, value in plain.epochs[-1].val.items():
        assert fast.epochs[-1].val[key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
