"""Load ImageNet weights for a ResNet trunk from a local file in torchvision's state-dict naming.

Nothing is downloaded: the user names a file, e.g. one saved elsewhere with
``torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict(), "resnet50.pth")`` or the ``.pth``
file from torchvision's own cache. Keys are matched by name (``conv1.weight``, ``bn1.running_mean``,
``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ...), which are the names of
:class:`taskbalance.models.resnet.ResNet`'s modules. The classifier ``fc.*`` is ignored; BatchNorm's
``num_batches_tracked`` counters may be absent (older files lack them) and then keep their current value.
Every other key must be present with the right shape, and no unknown key may appear.

Example:
    >>> import tempfile, torch
    >>> from taskbalance.models.resnet import resnet18
    >>> source, target = resnet18(), resnet18()
    >>> path = tempfile.mkdtemp() + "/resnet18.pth"
    >>> torch.save(source.state_dict(), path)
    >>> load_resnet_weights(target, path)
    >>> bool(torch.equal(source.conv1.weight, target.conv1.weight))
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

IGNORED_PREFIXES: tuple[str, ...] = ("fc.",)
OPTIONAL_SUFFIXES: tuple[str, ...] = ("num_batches_tracked",)
_SHOWN_KEYS = 5


def _some(keys: Iterable[str]) -> str:
    """At most five key names and how many there are in all, for an error message."""
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOWN_KEYS])
    more = f", ... ({len(keys)} in all)" if len(keys) > _SHOWN_KEYS else ""
    return shown + more


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The ``name → tensor`` mapping stored in ``path`` (``torch.load(..., weights_only=True)`` on the CPU).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file cannot be read as a weights-only torch file, or it holds no ``str → Tensor`` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        # The weights-only unpickler lets arbitrary bytes escape as KeyError, IndexError, ... (e.g. b"hello world"
        # or a file starting with "."), not only UnpicklingError; any of them means "not a weights file", and the
        # user needs the path. KeyboardInterrupt and SystemExit are not Exceptions and still propagate.
        raise ValueError(
            f"cannot read pretrained weights from {path} as a torch state dict: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(loaded, Mapping):
        raise ValueError(f"pretrained weights file {path} holds a {type(loaded).__name__}, expected a state dict")
    not_tensors = [str(key) for key, value in loaded.items() if not isinstance(key, str) or not torch.is_tensor(value)]
    if not_tensors:
        raise ValueError(f"pretrained weights file {path} has entries that are not tensors: {_some(not_tensors)}")
    return dict(loaded)


def load_resnet_weights(trunk: nn.Module, path: str | Path) -> None:
    """Copy the weights stored in ``path`` into ``trunk`` in place, after checking every name and shape.

    Args:
        trunk: a :class:`~taskbalance.models.resnet.ResNet` (any module whose state-dict names follow torchvision).
        path: local file with a torchvision-style ResNet state dict; ``fc.*`` entries are ignored.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable file; keys the model needs are missing; keys the model lacks are present; or shapes
            differ (e.g. ResNet-50 weights for a ResNet-18, or ``in_channels`` != 3). The message names the file
            and a few of the offending keys.
    """
    path = Path(path)
    stored = {key: value for key, value in read_state_dict(path).items() if not key.startswith(IGNORED_PREFIXES)}
    current = trunk.state_dict()
    missing = [key for key in current if key not in stored and not key.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [key for key in stored if key not in current]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_some(unexpected)}")
        raise ValueError(f"pretrained weights {path} do not match the model; " + "; ".join(parts))
    mismatched = [
        f"{key} (file {tuple(value.shape)}, model {tuple(current[key].shape)})"
        for key, value in stored.items()
        if value.shape != current[key].shape
    ]
    if mismatched:
        raise ValueError(f"pretrained weights {path} have shapes that differ from the model: {_some(mismatched)}")
    merged = dict(current)
    merged.update(stored)
    trunk.load_state_dict(merged, strict=True)


__all__ = ["IGNORED_PREFIXES", "load_resnet_weights", "read_state_dict"]
