"""The Ray test cluster: one local cluster per test module (2 CPUs, a small object store).

Import the fixture into a test module (``from tests.support.ray_cluster import cluster``);
tests that need Ray itself carry :data:`needs_ray`, and are skipped where it is not
installed (``pip install 'blemore[ray]'``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:  # pragma: no cover
    HAVE_RAY = False

needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'blemore[ray]')")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for the tests of one module; yields the ``ray`` module."""
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'blemore[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def free_port() -> int:
    """A TCP port nobody listens on (for a head node started with ``ray start``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head() -> Iterator[tuple[str, dict[str, str], Path]]:
    """A head node started with ``ray start``, as a user starts one: yields its address, the
    environment to reach it with, and the ``blemore`` script; skips where the scripts are missing."""
    ray_bin = Path(sys.executable).with_name("ray")
    blemore_bin = Path(sys.executable).with_name("blemore")
    if not ray_bin.exists() or not blemore_bin.exists():
        pytest.skip("the `ray` and `blemore` scripts are not installed beside this Python")
    port = free_port()
    temp = Path(f"/tmp/blemore-ray-{os.getpid()}")  # short: Ray's socket paths must stay < 108 bytes
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
         "--include-dashboard=false", "--object-store-memory", str(100 * 1024**2), "--temp-dir", str(temp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(60):  # until the head answers
            time.sleep(1)
            probe = subprocess.run([str(ray_bin), "status", "--address", address], capture_output=True,
                                   env=env)
            if probe.returncode == 0:
                break
        yield address, env, blemore_bin
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)
