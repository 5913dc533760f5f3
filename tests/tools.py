"""Commands of the machine that tests need, found or failed for (never silently skipped in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def compose_command() -> list[str]:
    """``docker compose`` (the plugin) or Debian's docker-compose 1.x: both check compose files."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    message = "neither `docker compose` nor docker-compose is installed"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (.ci/run installs docker-compose)")
    pytest.skip(message)
