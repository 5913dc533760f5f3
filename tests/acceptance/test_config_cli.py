"""`botyard config`: every setting with its variable, secrets masked; `--check` runs the checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from botyard.settings import Settings

SECRETS = {
    "JWT_SECRET": "jwt-secret-that-must-never-be-printed-0123456789",
    "ADMIN_PASSWORD": "admin-password-never-printed",
    "DATABASE_URL": "postgresql://bot:db-password-never-printed@db.example:5432/botyard",
    "SOME_API_TOKEN": "unrelated-token-never-printed",
}


def _config(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOTYARD_", "JWT_", "SSL_", "CORS_", "ADMIN_"))
        and k not in ("DATABASE_URL", "DEVELOPMENT_MODE", "TOKEN_RATE_LIMIT")
    }
    environment.update(BOTYARD_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-m", "botyard", "config", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_config_lists_every_setting_with_secrets_masked(tmp_path: Path) -> None:
    result = _config(
        tmp_path,
        **SECRETS,
        CORS_ORIGINS="https://ops.example.com,http://localhost:3000",
        TOKEN_RATE_LIMIT="20/minute",
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    for secret in ("jwt-secret-that", "admin-password-never", "db-password", "unrelated-token"):
        assert secret not in output + result.stderr
    lines = {line.split("=", 1)[0]: line for line in output.splitlines() if "=" in line}
    assert lines["JWT_SECRET"].split() == ["JWT_SECRET=***", "#", "environment"]
    assert lines["ADMIN_PASSWORD"].startswith("ADMIN_PASSWORD=*** ")
    assert lines["DATABASE_URL"].startswith(
        "DATABASE_URL=postgresql://bot:***@db.example:5432/botyard "
    )
    assert lines["CORS_ORIGINS"].startswith(
        'CORS_ORIGINS=["https://ops.example.com", "http://localhost:3000"] '
    )
    assert lines["TOKEN_RATE_LIMIT"].split() == ["TOKEN_RATE_LIMIT=20/minute", "#", "environment"]
    assert lines["DATA_REQUEST_RATE_LIMIT"].split() == [
        "DATA_REQUEST_RATE_LIMIT=5/hour",
        "#",
        "default",
    ]
    assert lines["SSL_CERT_PATH"].split() == ["SSL_CERT_PATH=", "#", "default"]
    assert lines["BOTYARD_LEASE_TTL"].split() == ["BOTYARD_LEASE_TTL=30.0", "#", "default"]
    settings = Settings()
    fields = sum(
        len(type(concern).model_fields)
        for concern in (getattr(settings, name) for name in type(settings).model_fields)
        if isinstance(concern, BaseModel)
    )
    assert len(lines) == fields  # every setting of every concern


def test_config_as_json_names_the_variable_in_use(tmp_path: Path) -> None:
    result = _config(tmp_path, "--json", JWT_SECRET_KEY=SECRETS["JWT_SECRET"])
    assert result.returncode == 0, result.stderr
    entries = {e["variable"]: e for e in json.loads(result.stdout)}
    assert entries["JWT_SECRET_KEY"] == {
        "section": "auth",
        "variable": "JWT_SECRET_KEY",
        "value": "***",
        "source": "environment",
    }
    assert entries["BOTYARD_DATA_DIR"]["value"] == str(tmp_path)
    assert SECRETS["JWT_SECRET"] not in result.stdout


def test_config_check_reports_what_would_stop_the_server(tmp_path: Path) -> None:
    refused = _config(tmp_path, "--check", JWT_SECRET="short-secret")
    assert refused.returncode == 2
    assert "JWT_SECRET is 12 bytes long; HS256 needs at least 32 bytes" in refused.stderr
    assert "short-secret" not in refused.stdout + refused.stderr
    passed = _config(tmp_path, "--check", JWT_SECRET=SECRETS["JWT_SECRET"])
    assert passed.returncode == 0 and "start-up checks passed" in passed.stderr


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_config_check_connects_to_the_database_and_redis(tmp_path: Path) -> None:
    port = _closed_port()
    database = f"postgresql://bot:db-password-never-printed@127.0.0.1:{port}/botyard"
    started = time.monotonic()
    refused = _config(tmp_path, "--check", DATABASE_URL=database, JWT_SECRET=SECRETS["JWT_SECRET"])
    assert time.monotonic() - started < 20
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.splitlines()  # one line: what is wrong, and what to do
    assert line.startswith(
        f"cannot connect to the database at postgresql://bot:***@127.0.0.1:{port}"
    )
    assert "Connection refused" in line and "Check DATABASE_URL" in line
    assert "db-password-never-printed" not in refused.stdout + refused.stderr

    redis = f"redis://:redis-password-never-printed@127.0.0.1:{port}/0"
    no_redis = _config(tmp_path, "--check", REDIS_URL=redis, JWT_SECRET=SECRETS["JWT_SECRET"])
    assert no_redis.returncode == 2, no_redis.stderr
    (line,) = no_redis.stderr.splitlines()
    assert line.startswith(f"Redis at redis://:***@127.0.0.1:{port}/0 does not answer")
    assert "redis-password-never-printed" not in no_redis.stdout + no_redis.stderr


@pytest.mark.parametrize("command", ["server", "up"])
def test_server_with_an_unreachable_database_says_so_in_a_line(
    tmp_path: Path, command: str
) -> None:
    database = f"postgresql://bot:db-password-never-printed@127.0.0.1:{_closed_port()}/botyard"
    environment = {**os.environ, "BOTYARD_DATA_DIR": str(tmp_path), "DATABASE_URL": database}
    environment["JWT_SECRET"] = SECRETS["JWT_SECRET"]
    server = subprocess.run(
        [sys.executable, "-m", "botyard", command, "--port", str(_closed_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 2, server.stderr
    assert "Traceback" not in server.stderr
    (line,) = server.stderr.splitlines()
    assert line.startswith("cannot connect to the database at postgresql://bot:***@127.0.0.1:")


def test_config_check_passes_with_a_reachable_database(tmp_path: Path, postgres_url: str) -> None:
    passed = _config(
        tmp_path, "--check", DATABASE_URL=postgres_url, JWT_SECRET=SECRETS["JWT_SECRET"]
    )
    assert passed.returncode == 0, passed.stderr
    assert "start-up checks passed (the store reached)" in passed.stderr


@pytest.mark.parametrize("proxies", ["10.0.0.1/8", '["*", "10.0.0.0/8"]'])
def test_server_refuses_forwarded_allow_ips_uvicorn_would_ignore_in_a_line(
    tmp_path: Path, proxies: str
) -> None:
    environment = {**os.environ, "BOTYARD_DATA_DIR": str(tmp_path), "FORWARDED_ALLOW_IPS": proxies}
    environment["JWT_SECRET"] = SECRETS["JWT_SECRET"]
    server = subprocess.run(
        [sys.executable, "-m", "botyard", "server", "--port", str(_closed_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode == 2, server.stderr  # before: it started, believing no proxy
    (line,) = server.stderr.splitlines()
    assert line.startswith("FORWARDED_ALLOW_IPS: "), line


@pytest.mark.parametrize("command", [["ls"], ["rm", "vera"], ["logout", "vera"]])
def test_users_with_an_unreachable_database_says_so_in_a_line(
    tmp_path: Path, command: list[str]
) -> None:
    database = f"postgresql://bot:db-password-never-printed@127.0.0.1:{_closed_port()}/botyard"
    done = subprocess.run(
        [sys.executable, "-m", "botyard", "users", *command, "--database-url", database],
        env={**os.environ, "BOTYARD_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr  # before: a traceback, exit 1
    assert "Traceback" not in done.stderr and "db-password-never-printed" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("cannot connect to the database at postgresql://bot:***@127.0.0.1:")
