"""Loading ImageNet weights from a local torchvision-style file: round trips through the builders, and every error."""

import re
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from taskbalance.models import MODELS
from taskbalance.models.pretrained import load_resnet_weights
from taskbalance.models.resnet import resnet18, resnet50
from taskbalance.types import HeadSpec

CELEBA_HEADS = {"smiling": HeadSpec(1, dense=False), "young": HeadSpec(1, dense=False)}


def randomised_weights(trunk: nn.Module, seed: int) -> dict[str, Tensor]:
    """A torchvision-style state dict whose every tensor (BN statistics too) differs from a fresh model's."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in trunk.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7 + seed)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=generator)
    return state


def save(state: dict[str, Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


def test_round_trip_into_resnet18_ignores_fc(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = randomised_weights(resnet18(), seed=1)
    weights["fc.weight"], weights["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    path = save(weights, tmp_path / "resnet18.pth")
    torch.manual_seed(2)
    model = MODELS.create("resnet18", heads=CELEBA_HEADS, pretrained=path)
    loaded = model.encoder.trunk.state_dict()
    assert set(loaded) == set(weights) - {"fc.weight", "fc.bias"}
    for key, value in loaded.items():
        assert torch.equal(value, weights[key]), key
    # A fresh model with the same seed differs, so equality above came from the file.
    torch.manual_seed(2)
    fresh = MODELS.create("resnet18", heads=CELEBA_HEADS)
    assert not torch.equal(fresh.encoder.trunk.conv1.weight, loaded["conv1.weight"])
    assert torch.equal(fresh.heads["smiling"].weight, model.heads["smiling"].weight)  # heads untouched


def test_round_trip_of_plain_resnet50_weights_into_the_dilated_deeplab_encoder(tmp_path: Path) -> None:
    weights = randomised_weights(resnet50(), seed=3)  # names do not depend on dilation
    path = save(weights, tmp_path / "resnet50.pth")
    model = MODELS.create("deeplabv3plus", heads={"depth": HeadSpec(1, dense=True)}, pretrained=str(path))
    for key, value in model.encoder.trunk.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_older_files_without_batch_counters_load_and_keep_the_counters(tmp_path: Path) -> None:
    weights = {k: v for k, v in randomised_weights(resnet18(), seed=4).items() if "num_batches_tracked" not in k}
    trunk = resnet18()
    load_resnet_weights(trunk, save(weights, tmp_path / "old.pth"))
    assert int(trunk.bn1.num_batches_tracked) == 0
    assert torch.equal(trunk.layer4[1].bn2.running_var, weights["layer4.1.bn2.running_var"])


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "resnet18.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(f"pretrained weights file not found: {path}")):
        MODELS.create("resnet18", heads=CELEBA_HEADS, pretrained=path)


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    weights = randomised_weights(resnet18(), seed=5)
    del weights["layer4.1.bn2.weight"]
    weights["layer5.0.conv1.weight"] = torch.zeros(1)
    path = save(weights, tmp_path / "odd.pth")
    trunk = resnet18()
    before = trunk.conv1.weight.clone()
    with pytest.raises(ValueError, match=r"missing keys: layer4\.1\.bn2\.weight; unexpected keys: layer5\.0\.conv1"):
        load_resnet_weights(trunk, path)
    assert torch.equal(trunk.conv1.weight, before)  # nothing was half-loaded


def test_wrong_architecture_lists_a_few_keys_and_the_total(tmp_path: Path) -> None:
    path = save(randomised_weights(resnet50(), seed=6), tmp_path / "resnet50.pth")
    with pytest.raises(ValueError, match=r"unexpected keys: (\S+, ){5}\.\.\. \(\d+ in all\)") as error:
        load_resnet_weights(resnet18(), path)
    assert str(path) in str(error.value)


def test_shape_mismatch_quotes_both_shapes(tmp_path: Path) -> None:
    path = save(randomised_weights(resnet18(), seed=7), tmp_path / "rgb.pth")
    with pytest.raises(ValueError, match=r"conv1\.weight \(file \(64, 3, 7, 7\), model \(64, 1, 7, 7\)\)"):
        MODELS.create("resnet18", heads=CELEBA_HEADS, in_channels=1, pretrained=path)


class NotAllowed:
    """An arbitrary class, which ``weights_only`` loading must refuse to unpickle."""


def test_files_that_are_not_weight_only_state_dicts_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=re.escape(f"cannot read pretrained weights from {garbage}")):
        load_resnet_weights(resnet18(), garbage)
    pickled = save({"conv1.weight": NotAllowed()}, tmp_path / "object.pth")  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cannot read pretrained weights"):
        load_resnet_weights(resnet18(), pickled)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ValueError, match="holds a list, expected a state dict"):
        load_resnet_weights(resnet18(), listed)
    mixed = tmp_path / "mixed.pth"
    torch.save({"conv1.weight": 3}, mixed)
    with pytest.raises(ValueError, match=r"not tensors: conv1\.weight"):
        load_resnet_weights(resnet18(), mixed)


# Bytes that the weights-only unpickler rejects with a bare KeyError ("hello world") or IndexError (the others)
# rather than an UnpicklingError (measured with torch 2.13); each must still become the documented ValueError.
@pytest.mark.parametrize("content", [b"hello world", b"(abc", b")abc", b".abc", b"Nabc"])
def test_arbitrary_bytes_raise_the_documented_value_error_naming_file_and_cause(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"cannot read pretrained weights from {path}")) as error:
        MODELS.create("resnet18", heads=CELEBA_HEADS, pretrained=path)
    cause = error.value.__cause__
    assert cause is not None
    assert f"{type(cause).__name__}: " in str(error.value)  # the underlying error type is kept in the message


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_interrupting_the_load_is_not_turned_into_a_value_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interruption: type[BaseException]
) -> None:
    path = save(randomised_weights(resnet18(), seed=8), tmp_path / "resnet18.pth")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise interruption

    monkeypatch.setattr(torch, "load", interrupted)
    with pytest.raises(interruption):
        load_resnet_weights(resnet18(), path)
