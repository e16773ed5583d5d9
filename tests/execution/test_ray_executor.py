"""The Ray executor on a local instance, inside a network namespace that has only loopback,
so the test also shows that a local Ray instance needs no network beyond 127.0.0.1.

Runs when the ``ray`` extra is importable (CI installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fake_runs import fake_result, invocations
from ray_driver import ray_configs

from taskbalance.execution.ray_tasks import RayUnavailableError, import_ray
from taskbalance.store import RunStore

HERE = Path(__file__).parent


def loopback_only() -> list[str]:
    """A command prefix that runs in a new network namespace whose only interface, lo, is up."""
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    return [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "loopback-only"]


@pytest.mark.ray
def test_sweep_on_a_local_ray_instance_with_loopback_only(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the optional extra taskbalance[ray] is not installed")
    links = subprocess.run([*loopback_only(), "ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]

    # A short folder: Ray puts Unix sockets under its temp dir, and socket paths are limited to 107 bytes.
    ray_temp = tempfile.mkdtemp(prefix="tbray", dir="/tmp")
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    try:
        completed = subprocess.run(
            [*loopback_only(), sys.executable, str(HERE / "ray_driver.py"), str(tmp_path), ray_temp],
            env=environment, capture_output=True, text=True, timeout=180,
        )
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert not Path(ray_temp).exists()
    assert "running 3 runs on Ray (local instance, 2 CPUs)" in completed.stdout

    configs = ray_configs(tmp_path)
    with RunStore(tmp_path / "results.sqlite") as store:
        assert all(store.get(c.run_id()) == fake_result(c) for c in configs)
    for config in configs:
        ((first_epoch, _, threads),) = invocations(tmp_path / "markers", config.run_id())
        assert first_epoch == 1 and threads == 1


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(RayUnavailableError, match=r"pip install 'taskbalance\[ray\]'"):
        import_ray()
