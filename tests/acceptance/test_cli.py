"""The `botyard` command in subprocesses, against a running orchestrator and worker."""

from __future__ import annotations

import json

import pytest

from tests.acceptance.conftest import System


def test_submit_wait_list_show(system: System) -> None:
    system.server()
    system.worker("cli-worker")
    login = system.run("login", "-u", "admin", "-p", system.env["ADMIN_PASSWORD"])
    assert login.returncode == 0, login.stderr

    done = system.run("submit", "accept.quick", "--payload", json.dumps({"n": 7}), "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout and '"n": 7' in done.stdout

    listed = system.run("jobs", "ls")
    assert listed.returncode == 0 and "accept.quick" in listed.stdout

    shown = system.run("jobs", "show", "1")
    assert shown.returncode == 0 and "quick job 7" in shown.stdout


def test_bad_payload_is_refused_without_a_job(system: System) -> None:
    system.server()
    bad = system.run("submit", "accept.quick", "--payload", '{"n": "seven"}')
    assert bad.returncode == 1
    assert "422" in bad.stderr and "payload.n" in bad.stderr
    assert system.api("GET", "/jobs").json()["total"] == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # --help reads no store
def test_every_command_has_help(system: System) -> None:
    for command in (
        [],
        ["up"],
        ["server"],
        ["worker"],
        ["submit"],
        ["jobs"],
        ["jobs", "ls"],
        ["jobs", "show"],
        ["jobs", "cancel"],
        ["jobs", "retry"],
        ["jobs", "resolve"],
        ["db", "upgrade"],
        ["login"],
        ["demo"],
        ["config"],
    ):
        result = system.run(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout
