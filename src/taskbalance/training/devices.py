"""Where a run trains: device names resolved and checked, and what is recorded about the device with a result."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch


class DeviceError(ValueError):
    """A requested device is not available here; the message lists what is."""


def available_devices() -> list[str]:
    """The device names this machine can train on, e.g. ``["cpu", "cuda", "cuda:0", "cuda:1"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else MPS, else CPU; any other name is checked to exist here.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')

    Raises:
        DeviceError: the device is not available (the message lists the available ones).
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        available = available_devices()
        return torch.device("cuda" if "cuda" in available else "mps" if "mps" in available else "cpu")
    available = available_devices()
    if name not in available:
        raise DeviceError(f"device {name!r} is not available here; available: {', '.join(available)}")
    return torch.device(name)


def device_record(device: torch.device) -> dict[str, Any]:
    """What a result records about where it was trained: device, its name, torch and CUDA versions."""
    if device.type == "cuda":
        described = torch.cuda.get_device_name(device)
    else:
        described = platform.processor() or platform.machine()
    return {
        "device": str(device),
        "device_name": described,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


@contextmanager
def determinism(device: torch.device, deterministic: bool) -> Iterator[None]:
    """On CUDA with ``deterministic``: deterministic algorithms only (and the cuBLAS workspace they need) while the
    block runs, then the process's previous settings again, so that a later run in the same worker (a sweep's pool
    process) without ``deterministic`` is not held to deterministic kernels. Anywhere else: nothing changes.

    Example:
        >>> with determinism(torch.device("cuda"), True):
        ...     torch.are_deterministic_algorithms_enabled()
        True
        >>> torch.are_deterministic_algorithms_enabled()
        False
    """
    if device.type != "cuda" or not deterministic:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """The forward pass's autocast context for ``precision`` (a no-op context for ``"fp32"``)."""
    dtype = AUTOCAST_DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
