"""The orchestrator's 1 MiB body limit against a real server: no body gets read past it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from tests.acceptance.conftest import System

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _chunks(mebibytes: int) -> Iterator[bytes]:
    block = b"x" * 2**20
    for _ in range(mebibytes):
        yield block


def _rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the store plays no part
def test_chunked_and_over_declared_bodies_are_cut_off(system: System) -> None:
    system.server()
    (server,) = system.procs
    before = _rss_mib(server.pid)
    auth = {"Authorization": f"Bearer {system.token}"}
    # Chunked (no Content-Length) into a JSON endpoint, the login form and the dashboard's form.
    for path, headers in (("/jobs", auth), ("/token", FORM), ("/ui/login", FORM)):
        answer = httpx.post(f"{system.url}{path}", content=_chunks(64), headers=headers, timeout=60)
        assert answer.status_code == 413, (path, answer.text)
        assert answer.json()["error_type"] == "PayloadTooLarge"
    # More bytes than the Content-Length says: the surplus is never taken as the body.
    address = urlsplit(system.url)
    with socket.create_connection((address.hostname, address.port or 80), timeout=10) as sock:
        head = b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        # The server hangs up on the surplus, which is not an HTTP request.
        with contextlib.suppress(ConnectionError):
            sock.sendall(head + b"\r\nContent-Length: 10\r\n\r\n" + b"x" * (32 * 2**20))
    grown = _rss_mib(server.pid) - before
    print(f"orchestrator RSS {before:.1f} MiB before, {before + grown:.1f} MiB after")
    assert grown < 16, f"the orchestrator grew by {grown:.0f} MiB reading refused bodies"
    assert httpx.get(f"{system.url}/health/ready", timeout=5).status_code == 200
