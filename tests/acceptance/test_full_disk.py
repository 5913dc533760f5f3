"""A full disk under a real orchestrator: readiness says so, and the log stays small.

The data directory is on a tmpfs of 8 MiB mounted for the test (root can; elsewhere the test
is skipped, except in CI, where it must run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botyard.orchestrator.health import READY_CACHE_SECONDS
from tests.acceptance.conftest import System

DISK_BYTES = 8 * 2**20
MIN_FREE = 2**20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)]
    try:
        mounted = subprocess.run(command, capture_output=True, text=True, timeout=30)
        problem = mounted.stderr.strip() if mounted.returncode else ""
    except FileNotFoundError:
        problem = "no mount command"
    if problem:
        message = f"cannot mount a small tmpfs for a full disk: {problem}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: this test must run here)")
        pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


def _fill(disk: Path, name: str, leave: int = 0) -> None:
    """Write a file on ``disk`` until at most ``leave`` bytes are free (none: until ENOSPC)."""
    block = b"\1" * 4096  # real bytes: a tmpfs gives sparse files no pages
    fd = os.open(disk / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while shutil.disk_usage(disk).free > leave:
            os.write(fd, block)
    except OSError:
        assert leave == 0, "the disk filled up before the room to leave"
    finally:
        os.close(fd)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the data directory's store
def test_readiness_fails_on_a_full_disk_and_the_failures_log_once(
    system: System, small_disk: Path
) -> None:
    system.env["BOTYARD_DATA_DIR"] = str(small_disk / "data")  # the log stays off the disk
    system.env["BOTYARD_MIN_FREE_BYTES"] = str(MIN_FREE)
    system.server()
    ready = httpx.get(f"{system.url}/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"store": "ok", "disk": "ok"}
    job = {"automation": "accept.quick", "payload": {"n": 1}}
    assert system.api("POST", "/jobs", json=job).status_code == 201

    # Nearly full: the store still writes, but there is less room than readiness asks for.
    _fill(small_disk, "nearly", leave=MIN_FREE // 2)
    nearly = httpx.get(f"{system.url}/health/ready", timeout=10)
    assert nearly.status_code == 503, nearly.text
    checks = nearly.json()["checks"]
    assert checks["store"] == "ok"
    assert (
        checks["disk"].startswith("the data directory has 0.")
        and "under the 1.0 MiB" in (checks["disk"])
    )

    # Full: SELECT 1 still answers, the probe's write does not.
    _fill(small_disk, "full")
    time.sleep(READY_CACHE_SECONDS)  # past the store check's last answer
    full = httpx.get(f"{system.url}/health/ready", timeout=10)
    assert full.status_code == 503, full.text
    assert full.json()["checks"]["store"] == "cannot write: the disk is full"
    assert "store cannot write: the disk is full" in full.json()["detail"]

    # A burst of submits that all fail: one traceback, not two per request.
    log = system.data_dir / "processes.log"
    before = log.stat().st_size
    answers = [system.api("POST", "/jobs", json=job).status_code for _ in range(100)]
    assert 201 not in answers
    grown = log.stat().st_size - before
    text = log.read_text(errors="replace")
    assert text.count("unhandled error") <= 1, text[-5000:]
    assert "Exception in ASGI application" not in text
    codes = {code: answers.count(code) for code in set(answers)}
    print(f"100 failing submits ({codes}) added {grown} bytes to the log")
    assert grown < 30_000, f"{grown} bytes of log for 100 failing submits"

    # Room again: ready again, and submits work.
    (small_disk / "full").unlink()
    (small_disk / "nearly").unlink()
    time.sleep(READY_CACHE_SECONDS)
    again = httpx.get(f"{system.url}/health/ready", timeout=10)
    assert again.status_code == 200, again.text
    assert system.api("POST", "/jobs", json=job).status_code == 201
