"""``torchrun -m taskbalance train`` on 2 CPU processes (gloo, loopback only): the result of one process on the
global batch, rank 0 alone writes, and a run killed mid-way resumes from rank 0's checkpoint."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from taskbalance.store import RunStore
from taskbalance.training import RunConfig

CONFIG = """
method = "{method}"
epochs = {epochs}
batch_size = 32
eval_batch_size = 64
lr = 0.01
dataset_options = {{ num_train = 256, num_val = 64, num_test = 64 }}
{options}
"""


def _loopback_only() -> list[str]:
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    return [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "loopback-only"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(config: Path, out: Path) -> list[str]:
    return [
        *_loopback_only(), sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1",
        "--master-addr=127.0.0.1", f"--master-port={_free_port()}", "-m", "taskbalance", "train", str(config),
        "--out", str(out),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def _write(tmp_path: Path, method: str, epochs: int, options: str = "") -> tuple[Path, RunConfig]:
    text = CONFIG.format(method=method, epochs=epochs, options=options)
    path = tmp_path / f"{method}.toml"
    path.write_text(text)
    import tomllib

    return path, RunConfig.from_dict(tomllib.loads(text))


def _stored(out: Path, config: RunConfig) -> object:
    with RunStore(out / "results.sqlite") as store:
        result = store.get(config.run_id())
    assert result is not None
    return result


def _assert_same_training(a: object, b: object) -> None:
    for first, second in zip(a.epochs, b.epochs, strict=True):  # type: ignore[attr-defined]
        for key in first.val:
            torch.testing.assert_close(first.val[key], second.val[key], rtol=1e-4, atol=1e-5, msg=key)
    torch.testing.assert_close(
        torch.tensor(a.step_weights), torch.tensor(b.step_weights), rtol=1e-4, atol=1e-6  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize(
    ("method", "options"), [("uwso", ""), ("pcgrad", 'method_options = { mode = "representation" }')]
)
def test_two_processes_train_like_one_on_the_global_batch(tmp_path: Path, method: str, options: str) -> None:
    config_file, config = _write(tmp_path, method, epochs=2, options=options)
    single = subprocess.run(
        [sys.executable, "-m", "taskbalance", "train", str(config_file), "--out", str(tmp_path / "one")],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    done = subprocess.run(_torchrun(config_file, tmp_path / "two"), capture_output=True, text=True, env=_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("stored in") == 1  # rank 0 alone reports and writes
    assert done.stdout.count("epoch 1: train loss") == 1
    _assert_same_training(_stored(tmp_path / "two", config), _stored(tmp_path / "one", config))


def test_a_run_killed_under_torchrun_resumes_from_rank_0s_checkpoint(tmp_path: Path) -> None:
    config_file, config = _write(tmp_path, "dwa", epochs=8)
    out = tmp_path / "two"
    checkpoint = out / "checkpoints" / f"{config.run_id()}.pt"
    first = subprocess.Popen(_torchrun(config_file, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env(), start_new_session=True)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    # kill -9 the launcher and both ranks (torchrun starts its workers in sessions of their own).
    subprocess.run(["pkill", "-9", "-f", str(config_file)], check=False)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    while subprocess.run(["pgrep", "-f", str(config_file)], capture_output=True).returncode == 0:
        time.sleep(0.05)
    assert checkpoint.exists(), "no checkpoint was written before the kill"
    done_epochs = torch.load(checkpoint, weights_only=True)["records"][-1]["epoch"]
    assert done_epochs < 8

    resumed = subprocess.run(_torchrun(config_file, out), capture_output=True, text=True, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "epoch 1: train loss" not in resumed.stdout  # the finished epochs were not trained again
    assert f"epoch {done_epochs + 1}: train loss" in resumed.stdout
    single = subprocess.run(
        [sys.executable, "-m", "taskbalance", "train", str(config_file), "--out", str(tmp_path / "one")],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    _assert_same_training(_stored(out, config), _stored(tmp_path / "one", config))
    assert not checkpoint.exists()
