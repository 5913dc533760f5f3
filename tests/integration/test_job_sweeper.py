"""The job-process sweeper: marked processes whose supervisor is gone are killed, others spared."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from botyard.automations.supervisor import OWNER_VAR
from botyard.worker import job_sweeper


def _marker(pid: int) -> str:
    return f"{pid}:{psutil.Process(pid).create_time():.2f}"


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def _sleeper(marker: str, spawned: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "60"], env={**os.environ, OWNER_VAR: marker})
    spawned.append(proc)
    return proc


def test_a_job_process_whose_supervisor_is_gone_is_killed_and_logged(
    spawned: list[subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead_marker = _marker(owner.pid)
    owner.kill()
    owner.wait()
    orphan = _sleeper(dead_marker, spawned)
    kept = _sleeper(_marker(os.getpid()), spawned)  # its supervisor (this test) is alive
    recycled = _sleeper(f"{os.getpid()}:{psutil.Process().create_time() - 100:.2f}", spawned)
    caplog.set_level(logging.WARNING, logger="botyard.worker")

    swept = {leftover.pid for leftover in job_sweeper.sweep()}

    assert swept == {orphan.pid, recycled.pid}  # a recycled pid is not the same supervisor
    assert orphan.wait(5) == -9 and recycled.wait(5) == -9
    assert kept.poll() is None
    assert f"killed job process {orphan.pid} (sleep)" in caplog.text
