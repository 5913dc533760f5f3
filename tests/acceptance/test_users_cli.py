"""``botyard users`` against a running orchestrator: every change ends old tokens within seconds."""

from __future__ import annotations

import httpx

from tests.acceptance.conftest import System


def _token(system: System, username: str, password: str) -> dict[str, str]:
    answer = httpx.post(f"{system.url}/token", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _refused_soon(system: System, path: str, headers: dict[str, str]) -> float:
    """Seconds until the server refuses ``headers`` (it re-reads a user every 5 s at most)."""
    return system.wait_for(
        lambda: httpx.get(f"{system.url}{path}", headers=headers).status_code == 401,
        timeout=7,
        what=f"{path} to refuse the old token",
    )


def test_role_change_delete_and_logout_end_tokens_on_a_running_server(system: System) -> None:
    system.server()
    added = system.run("users", "add", "olivia", "--role", "operator", "-p", "operator-pw")
    assert added.returncode == 0, added.stderr
    operator = _token(system, "olivia", "operator-pw")
    assert httpx.get(f"{system.url}/jobs", headers=operator).status_code == 200
    changed = system.run("users", "role", "olivia", "viewer")
    assert changed.returncode == 0 and "every token of theirs ends" in changed.stdout
    assert _refused_soon(system, "/jobs", operator) < 6

    viewer = _token(system, "olivia", "operator-pw")
    assert system.run("users", "rm", "olivia").returncode == 0
    assert system.run("users", "add", "olivia", "-r", "admin", "-p", "another-pw").returncode == 0
    assert _refused_soon(system, "/audit", viewer) < 6  # the old token is not the new admin's
    admin = _token(system, "olivia", "another-pw")
    assert httpx.get(f"{system.url}/audit", headers=admin).status_code == 200

    assert system.run("users", "logout", "olivia").returncode == 0
    assert _refused_soon(system, "/audit", admin) < 6
    short = system.run("users", "passwd", "olivia", "-p", "short")
    assert short.returncode == 1
    assert short.stdout.strip() == "Use a password of at least 8 characters."
    missing = system.run("users", "disable", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stdout
    assert "Traceback" not in short.stderr + missing.stderr
    events = system.api("GET", "/audit", params={"actor": "cli"}).json()["items"]
    assert [e["action"] for e in events] == [
        "logout", "user_created", "user_deleted", "user_role_changed", "user_created"
    ]  # fmt: skip
