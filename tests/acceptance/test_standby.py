"""``botyard standby`` as a subprocess, fetching scripts from a local HTTPS server the test runs.

The server's certificate comes from a test CA trusted only through ``STANDBY_CA_BUNDLE``, and
private addresses are allowed for these tests only (``STANDBY_ALLOW_PRIVATE_URLS``).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from botyard import StandbyClient
from botyard.client import ApiError
from tests.acceptance.conftest import System
from tests.pki import Pki, make_pki

TOKEN = "standby-acceptance-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

WRITE_PAYLOAD = """
import json, os, pathlib, time
payload = json.load(open(os.environ["BOTYARD_PAYLOAD_FILE"]))
go = pathlib.Path(payload["go_file"])
deadline = time.monotonic() + 20
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
pathlib.Path(payload["out_file"]).write_text(json.dumps(payload))
print("wrote", payload["out_file"])
assert "TASK_AUTH_TOKEN" not in os.environ
"""

FAIL = "import sys\nprint('portal said no')\nsys.exit(3)\n"

HANG = """
import json, os, pathlib, subprocess, time
payload = json.load(open(os.environ["BOTYARD_PAYLOAD_FILE"]))
child = subprocess.Popen(["sleep", "300"])
pathlib.Path(payload["pid_file"]).write_text(str(child.pid))
time.sleep(300)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 serving test scripts; yields its base URL."""
    folder = tmp_path_factory.mktemp("scripts")
    (folder / "write_payload.py").write_text(WRITE_PAYLOAD)
    (folder / "fail.py").write_text(FAIL)
    (folder / "hang.py").write_text(HANG)
    (folder / "huge.py").write_bytes(b"#" * (6 * 1024 * 1024))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


Standby = Callable[..., tuple[subprocess.Popen[str], str]]


@pytest.fixture
def standby(tmp_path: Path, pki: Pki) -> Iterator[Standby]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
        port = _free_port()
        environment = {
            **os.environ,
            "TASK_AUTH_TOKEN": TOKEN,
            "TASK_SERVER_PORT": str(port),
            "STANDBY_ALLOW_PRIVATE_URLS": "true",
            "STANDBY_CA_BUNDLE": str(pki.ca),
            **env,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "botyard", "standby", *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.kill()
        pytest.fail(f"standby did not start: {proc.communicate()[0]}")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _task(base: str, script_url: str, payload: dict[str, object]) -> httpx.Response:
    body = {
        "script_url": script_url,
        "script_name": script_url.rsplit("/", 1)[1],
        "payload": payload,
    }
    return httpx.post(f"{base}/task", json=body, headers=AUTH, timeout=10)


def test_a_task_runs_with_its_payload_then_the_process_exits_0(
    standby: Standby, scripts: str, tmp_path: Path
) -> None:
    proc, base = standby()
    payload = {
        "go_file": str(tmp_path / "go"),
        "out_file": str(tmp_path / "out.json"),
        "process_id": "12345",
    }
    unauthorised = httpx.post(f"{base}/task", json={}, timeout=5)
    assert unauthorised.status_code == 401

    accepted = _task(base, f"{scripts}/write_payload.py", payload)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "accepted"
    busy = _task(base, f"{scripts}/write_payload.py", payload)
    assert busy.status_code == 409 and busy.json()["detail"] == "a task is already executing"
    assert httpx.get(f"{base}/health").json()["task_executing"] is True

    (tmp_path / "go").touch()
    assert proc.wait(30) == 0
    assert json.loads((tmp_path / "out.json").read_text()) == payload


def test_a_failing_script_makes_the_process_exit_1(standby: Standby, scripts: str) -> None:
    proc, base = standby()
    assert _task(base, f"{scripts}/fail.py", {}).status_code == 202
    assert proc.wait(30) == 1
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert "portal said no" in output and "exited with code 3" in output


def test_worker_timeout_kills_the_script_and_what_it_started(
    standby: Standby, scripts: str, tmp_path: Path
) -> None:
    proc, base = standby(WORKER_TIMEOUT="2")
    pid_file = tmp_path / "pid"
    assert _task(base, f"{scripts}/hang.py", {"pid_file": str(pid_file)}).status_code == 202
    assert proc.wait(30) == 1
    grandchild = int(pid_file.read_text())
    assert not psutil.pid_exists(grandchild) or (
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    )


def test_a_script_over_5_mib_is_not_run(standby: Standby, scripts: str) -> None:
    proc, base = standby()
    assert _task(base, f"{scripts}/huge.py", {}).status_code == 202
    assert proc.wait(30) == 1
    assert proc.stdout is not None
    assert "larger than 5242880 bytes" in proc.stdout.read()


def test_an_untrusted_certificate_fails_the_task(standby: Standby, scripts: str) -> None:
    proc, base = standby(STANDBY_CA_BUNDLE="")  # the system's CAs do not know the test CA
    assert _task(base, f"{scripts}/fail.py", {}).status_code == 202
    assert proc.wait(30) == 1
    assert proc.stdout is not None
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stdout.read()


def test_keep_running_serves_task_after_task(
    standby: Standby, scripts: str, tmp_path: Path
) -> None:
    proc, base = standby("--keep-running")
    for n in range(2):
        (tmp_path / "go").touch()
        payload = {"go_file": str(tmp_path / "go"), "out_file": str(tmp_path / f"out{n}.json")}
        assert _task(base, f"{scripts}/write_payload.py", payload).status_code == 202
        deadline = time.monotonic() + 20
        while httpx.get(f"{base}/health").json()["task_executing"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        last = httpx.get(f"{base}/health").json()["last_task"]
        assert last["status"] == "succeeded" and last["exit_code"] == 0
    assert proc.poll() is None
    assert (tmp_path / "out1.json").exists()


def test_the_standby_client(standby: Standby, scripts: str, tmp_path: Path) -> None:
    proc, base = standby()
    with StandbyClient(base, token=TOKEN) as client:
        assert client.health()["task_executing"] is False
        with pytest.raises(ApiError) as invalid:
            client.send_task("http://127.0.0.1/x.py")
        assert invalid.value.status == 400 and "https://" in invalid.value.detail
        payload = {"go_file": str(tmp_path / "go"), "out_file": str(tmp_path / "out.json")}
        accepted = client.send_task(f"{scripts}/write_payload.py", payload=payload)
        assert accepted["script_name"] == "write_payload.py"
        with pytest.raises(ApiError) as busy:
            client.send_task(f"{scripts}/write_payload.py", payload=payload)
        assert busy.value.status == 409
    with StandbyClient(base, token="wrong") as intruder, pytest.raises(ApiError) as denied:
        intruder.send_task(f"{scripts}/write_payload.py")
    assert denied.value.status == 401
    (tmp_path / "go").touch()
    assert proc.wait(30) == 0


def test_tasks_are_recorded_as_jobs_on_the_orchestrator(
    system: System, standby: Standby, scripts: str, tmp_path: Path
) -> None:
    system.env["BOTYARD_WORKER_TOKEN"] = "shared-worker-token"
    system.server()
    env = {
        "BOTYARD_URL": system.url,
        "BOTYARD_WORKER_TOKEN": "shared-worker-token",
        "BOTYARD_WORKER_ID": "standby-7",
    }
    (tmp_path / "go").touch()
    payload = {"go_file": str(tmp_path / "go"), "out_file": str(tmp_path / "out.json")}
    proc, base = standby(**env)
    assert _task(base, f"{scripts}/write_payload.py", payload).status_code == 202
    assert proc.wait(30) == 0
    proc, base = standby(**env)
    assert _task(base, f"{scripts}/fail.py", {"order": 7}).status_code == 202
    assert proc.wait(30) == 1

    ok = system.api("GET", "/jobs", params={"automation": "standby.write_payload"}).json()
    (job,) = ok["items"]
    detail = system.job(job["id"])
    assert detail["status"] == "succeeded" and detail["payload"] == payload
    assert [a["worker_id"] for a in detail["attempts"]] == ["standby-7"]  # type: ignore[index]
    failed = system.api("GET", "/jobs", params={"automation": "standby.fail"}).json()["items"][0]
    detail = system.job(failed["id"])
    assert detail["status"] == "failed"
    assert "exited with code 3" in detail["error"]["message"]  # type: ignore[index]
    assert "portal said no" in detail["error"]["output_tail"]  # type: ignore[index]
    refused = system.api("POST", f"/jobs/{failed['id']}/retry")
    assert refused.status_code == 409 and "send the task again" in refused.json()["detail"]


def test_sigterm_during_a_task_kills_it_and_exits_1(
    standby: Standby, scripts: str, tmp_path: Path
) -> None:
    proc, base = standby()
    pid_file = tmp_path / "pid"
    assert _task(base, f"{scripts}/hang.py", {"pid_file": str(pid_file)}).status_code == 202
    deadline = time.monotonic() + 20
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the script did not start"
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(30) == 1
    grandchild = int(pid_file.read_text())
    assert not psutil.pid_exists(grandchild) or (
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    )


def _chunks(mebibytes: int) -> Iterator[bytes]:
    block = b"x" * 2**20
    for _ in range(mebibytes):
        yield block


def _post_big(url: str, mebibytes: int, *, declared: bool, **headers: str) -> httpx.Response:
    """A body of ``mebibytes``, with its Content-Length or chunked (a generator, no length)."""
    if declared:
        headers["Content-Length"] = str(mebibytes * 2**20)
    return httpx.post(url, content=_chunks(mebibytes), headers=headers, timeout=60)


def _rss_mib(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> float:
    return float(psutil.Process(proc.pid).memory_info().rss) / 2**20


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("token", ["", TOKEN], ids=["no-token", "token"])
def test_a_body_over_the_limit_is_413_without_being_read_into_memory(
    standby: Standby, declared: bool, token: str
) -> None:
    proc, base = standby(TASK_AUTH_TOKEN=token)  # no token is the default: anyone may post
    before = _rss_mib(proc)
    for _ in range(2):
        answer = _post_big(f"{base}/task", 128, declared=declared, **AUTH)
        assert answer.status_code == 413, answer.text
        assert answer.json()["error_type"] == "PayloadTooLarge"
    grown = _rss_mib(proc) - before
    print(f"standby RSS {before:.1f} MiB before, {before + grown:.1f} MiB after 2 x 128 MiB")
    assert grown < 16, f"the standby server grew by {grown:.0f} MiB reading refused bodies"
    assert httpx.get(f"{base}/health").json()["task_executing"] is False
