"""Real `botyard` processes on a real store: the orchestrator and workers as subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from botyard.store.sql import SqlStore, open_store

AUTOMATIONS = str(Path(__file__).with_name("acceptance_automations.py"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class System:
    """Processes of one Botyard installation sharing a data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.url = ""
        self.token = ""
        self.log = (data_dir / "processes.log").open("ab")
        self.cwd: Path | None = None  # where the processes start (relative paths resolve there)

    def botyard(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "botyard", *args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
        )
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "botyard", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.cwd,
        )

    def server(self, *extra: str) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env["BOTYARD_URL"] = self.url
        self.botyard("server", "--port", str(port), "--automations", AUTOMATIONS, *extra)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("orchestrator did not start")
        answer = httpx.post(
            f"{self.url}/token", data={"username": "admin", "password": self.env["ADMIN_PASSWORD"]}
        )
        self.token = answer.json()["access_token"]

    def worker(self, worker_id: str, *extra: str) -> subprocess.Popen[bytes]:
        proc = self.botyard(
            "worker", "--automations", AUTOMATIONS, "--worker-id", worker_id, *extra
        )
        return proc

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def submit(self, automation: str, payload: dict[str, object]) -> int:
        answer = self.api("POST", "/jobs", json={"automation": automation, "payload": payload})
        assert answer.status_code == 201, answer.text
        job_id: int = answer.json()["id"]
        return job_id

    def job(self, job_id: int) -> dict[str, object]:
        job: dict[str, object] = self.api("GET", f"/jobs/{job_id}").json()
        return job

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate():
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()


@pytest.fixture
def system(tmp_path: Path, store_url: str) -> Iterator[System]:
    env = {
        **os.environ,
        "BOTYARD_DATA_DIR": str(tmp_path),
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": "acceptance-password",
        "JWT_SECRET": "acceptance-tests-secret-of-at-least-32-bytes",
        "BOTYARD_LEASE_TTL": "2",
        "BOTYARD_RECOVER_INTERVAL": "0.5",
        "BOTYARD_WORKER_POLL_INTERVAL": "1",
        "BOTYARD_WORKER_HEARTBEAT_INTERVAL": "0.5",
        # Teardown stops workers still running long jobs: 5 s of grace, not 30 (tests that
        # stop a worker with SIGTERM run jobs of 2 s at most).
        "BOTYARD_WORKER_SHUTDOWN_GRACE": "5",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    if store_url.startswith("postgresql"):
        env["DATABASE_URL"] = store_url
    else:
        env.pop("DATABASE_URL", None)
    sys_ = System(tmp_path, env)
    try:
        yield sys_
    finally:
        sys_.stop()


@pytest.fixture
def store_for(system: System, store_url: str) -> Iterator[SqlStore]:
    """A direct handle on the same store, to check what the processes wrote."""
    store = open_store(store_url)
    try:
        yield store
    finally:
        store.close()
