"""Fixtures of the API tests: a started orchestrator app over a real store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api_helpers import MakeApi

from botyard.orchestrator.app import create_app
from botyard.settings import Settings

SECRET = "operations-tests-secret-that-is-long-enough"
AUTOMATIONS = str(Path(__file__).parents[1] / "acceptance" / "acceptance_automations.py")


@pytest.fixture
def make_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeApi]:
    """``make_api(store_url=None, **environment)``: a started app, SQLite in tmp_path by default.

    An environment value of ``None`` removes the variable.
    """
    with ExitStack() as stack:

        def make(store_url: str | None = None, **environment: str | None) -> TestClient:
            for name in ("CORS_ORIGINS", "CORS_ALLOW_CREDENTIALS", "DEVELOPMENT_MODE"):
                monkeypatch.delenv(name, raising=False)
            variables = {
                "DATABASE_URL": store_url or f"sqlite:///{tmp_path}/botyard.db",
                "BOTYARD_DATA_DIR": str(tmp_path),
                "JWT_SECRET": SECRET,
                "ADMIN_USERNAME": "admin",
                "ADMIN_PASSWORD": "admin-password",
                "BOTYARD_AUTOMATIONS": AUTOMATIONS,
                **environment,
            }
            for name, value in variables.items():
                if value is None:
                    monkeypatch.delenv(name, raising=False)
                else:
                    monkeypatch.setenv(name, value)
            client = stack.enter_context(TestClient(create_app(Settings())))
            return client

        yield make
