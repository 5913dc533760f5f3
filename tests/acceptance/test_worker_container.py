"""The worker container's files: the entrypoint run for real in each mode, the compose file checked.

No Docker engine runs here, so the image is not built: the entrypoint script is run directly
with this checkout's ``botyard`` on the PATH, and the compose file goes through
``docker compose config`` (or docker-compose 1.x), which validates it without an engine.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from botyard.store.sql import open_store
from tests.acceptance.conftest import AUTOMATIONS, _free_port
from tests.tools import compose_command

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENTRYPOINT = DEPLOY / "worker-entrypoint.sh"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        BOTYARD_DATA_DIR=str(tmp_path),
        BOTYARD_AUTOMATIONS=AUTOMATIONS,
        **extra,
    )
    return env


def _wait_health(url: str, proc: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the entrypoint's command exited"
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(url, timeout=1)
            if answer.status_code == 200:
                body: dict[str, object] = answer.json()
                return body
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_standby_mode(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path, WORKER_MODE="standby", TASK_SERVER_PORT=str(port), TASK_AUTH_TOKEN="t")
    proc = subprocess.Popen([str(ENTRYPOINT)], env=env)
    try:
        health = _wait_health(f"http://127.0.0.1:{port}/health", proc)
        assert health["mode"] == "standby"
        probe = subprocess.run([str(ENTRYPOINT), "healthcheck"], env=env, timeout=30)
        assert probe.returncode == 0
    finally:
        _stop(proc)


def test_agent_mode_takes_seed_003s_variables(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(
        tmp_path,
        WORKER_MODE="agent",
        BOTYARD_AGENT_PORT=str(port),
        DEVELOPMENT_MODE="true",
        WORKER_ID="container-agent",
        WORKER_CONCURRENCY="3",
    )
    proc = subprocess.Popen([str(ENTRYPOINT)], env=env)
    try:
        _wait_health(f"http://127.0.0.1:{port}/health", proc)
        status = httpx.get(f"http://127.0.0.1:{port}/status").json()
        assert status["worker_id"] == "container-agent"
        assert status["capacity"]["max_concurrent"] == 3
    finally:
        _stop(proc)


def test_pull_mode_is_the_default(tmp_path: Path) -> None:
    env = _env(tmp_path, WORKER_ID="container-pull", MAX_RETRIES="1", HEALTH_CHECK_INTERVAL="1")
    env.pop("WORKER_MODE", None)
    proc = subprocess.Popen([str(ENTRYPOINT)], env=env)
    store = open_store(f"sqlite:///{tmp_path / 'botyard.db'}")
    try:
        deadline = time.monotonic() + 30
        while store.workers.get("container-pull") is None:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        worker = store.workers.get("container-pull")
        assert worker is not None and worker.mode == "pull"
        assert subprocess.run([str(ENTRYPOINT), "healthcheck"], env=env).returncode == 0
    finally:
        _stop(proc)
        store.close()
    assert proc.returncode == 0  # SIGTERM: a graceful stop


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ENTRYPOINT)], env=_env(tmp_path, WORKER_MODE="push"), capture_output=True, text=True
    )
    assert result.returncode == 2 and "WORKER_MODE must be" in result.stderr


def test_the_dockerfile_copies_what_exists_and_runs_the_entrypoint() -> None:
    dockerfile = (DEPLOY / "worker.Dockerfile").read_text()
    root = DEPLOY.parent
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
        assert (root / source).exists(), source
    assert "chromium chromium-driver" in dockerfile
    assert "ENV BOTYARD_DATA_DIR=/data" in dockerfile and "WORKER_MODE=pull" in dockerfile
    assert 'ENTRYPOINT ["tini", "--", "botyard-worker-entrypoint"]' in dockerfile
    assert "USER botyard" in dockerfile


def test_the_standby_compose_file_is_valid() -> None:
    compose = DEPLOY / "docker-compose.standby.yml"
    env = {**os.environ, "TASK_AUTH_TOKEN": "token-for-the-check"}
    result = subprocess.run(
        [*compose_command(), "-f", str(compose), "config"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "WORKER_MODE: standby" in result.stdout
    assert "restart: always" in result.stdout
    refused = subprocess.run(
        [*compose_command(), "-f", str(compose), "config"],
        env={k: v for k, v in os.environ.items() if k != "TASK_AUTH_TOKEN"},
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "TASK_AUTH_TOKEN" in refused.stderr
