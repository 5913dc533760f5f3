"""`botyard config`: every setting with its variable, secrets masked; `--check` runs the checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
