"""Logins at a real ``botyard server``: forwarded addresses, per-account limits, long passwords.

Issue 13: 60 wrong passwords with a rotating ``X-Forwarded-For`` from loopback got 0 x 429
(uvicorn believed forwarded headers from 127.0.0.1); an 80-character ``ADMIN_PASSWORD`` stopped
the orchestrator starting (bcrypt's 72 bytes).
"""

from __future__ import annotations

import httpx

from tests.acceptance.conftest import System


def _login(system: System, username: str, password: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    answer = httpx.post(
        f"{system.url}/token",
        data={"username": username, "password": password},
        headers=headers,
        timeout=10,
    )
    return answer.status_code


def test_a_rotating_forwarded_for_does_not_escape_the_login_limit(system: System) -> None:
    system.server()  # FORWARDED_ALLOW_IPS unset: no proxy is believed, loopback neither
    assert system.run("users", "add", "vera", "--password", "viewer-pass").returncode == 0
    codes = [_login(system, "admin", f"guess-{n}", forwarded=f"203.0.113.{n}") for n in range(60)]
    assert codes[:10] == [401] * 10  # TOKEN_RATE_LIMIT: 10 failures per minute
    assert codes[10:] == [429] * 50
    assert _login(system, "vera", "viewer-pass") == 200  # another user at the same address
    failures = system.api("GET", "/audit", params={"action": "login_failed"}).json()
    assert {event["client"] for event in failures["items"]} == {"127.0.0.1"}


def test_behind_a_trusted_proxy_an_account_is_limited_across_addresses(system: System) -> None:
    system.env.update(FORWARDED_ALLOW_IPS="127.0.0.1", LOGIN_ACCOUNT_RATE_LIMIT="20/hour")
    system.server()  # logs in as admin from 127.0.0.1: its owner's address
    codes = [_login(system, "admin", f"guess-{n}", forwarded=f"203.0.113.{n}") for n in range(30)]
    assert codes == [401] * 20 + [429] * 10  # every address new, the account's limit holds
    assert _login(system, "admin", "wrong", forwarded="198.51.100.7") == 429
    password = system.env["ADMIN_PASSWORD"]
    assert _login(system, "admin", password) == 200  # not locked out where it logs in
    failures = system.api("GET", "/audit", params={"action": "login_failed"}).json()
    assert "203.0.113.5" in {event["client"] for event in failures["items"]}


def test_an_admin_password_over_72_bytes_starts_and_logs_in(system: System) -> None:
    system.env["ADMIN_PASSWORD"] = "p" * 80  # exit 3 before: bcrypt refuses it
    system.server()  # logs in with it
    assert system.api("GET", "/audit").status_code == 200
    assert _login(system, "admin", "p" * 81) == 401  # a 500 before
