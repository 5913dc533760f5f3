"""The README's main job: `botyard demo`, and `botyard up` stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(BOTYARD_DATA_DIR=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.update(COLUMNS="200")
    return env


def test_demo_drives_the_portal_in_chromium(tmp_path: Path) -> None:
    """The README's main job: six browser jobs, three at a time, log in with TOTP codes."""
    folder = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "botyard", "demo", "--data-dir", str(folder)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 jobs in" in result.stdout
    assert "1 failed, 5 succeeded" in result.stdout
    shots = sorted(p.name for p in (folder / "evidence" / "3" / "1").iterdir())
    assert shots == ["cancelled.png", "circuit.png", "confirm-cancel.png", "logged-in.png"]
    failed = sorted(p.name for p in (folder / "evidence" / "6" / "1").iterdir())
    assert {"failure.png", "failure.html"} <= set(failed)


def test_classic_demo_runs_every_kind_of_outcome(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "botyard",
            "demo",
            "--classic",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 jobs in" in result.stdout
    assert "1 failed, 1 needs_review, 3 succeeded" in result.stdout


def test_up_serves_jobs_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _env(tmp_path)
    env.update(ADMIN_PASSWORD="up-test-password")
    proc = subprocess.Popen(
        [sys.executable, "-m", "botyard", "up", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        token = None
        while time.monotonic() < deadline and token is None:
            try:
                answer = httpx.post(
                    f"{url}/token", data={"username": "admin", "password": "up-test-password"}
                )
                token = answer.json()["access_token"]
            except httpx.HTTPError:
                time.sleep(0.2)
        assert token, "botyard up did not come up"
        headers = {"Authorization": f"Bearer {token}"}
        job = httpx.post(
            f"{url}/jobs",
            json={"automation": "demo.hello", "payload": {"delay": 0}},
            headers=headers,
        ).json()
        while time.monotonic() < deadline:
            if (
                httpx.get(f"{url}/jobs/{job['id']}", headers=headers).json()["status"]
                == "succeeded"
            ):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the job did not succeed")
        workers = httpx.get(f"{url}/workers", headers=headers).json()
        assert len(workers) == 2 and all(w["online"] for w in workers)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    children = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True)
    assert children.stdout.strip() == ""  # the orchestrator is gone too
