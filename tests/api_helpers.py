"""Small helpers shared by the API tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi.testclient import TestClient

#: ``make_api(store_url=None, **environment)`` (the fixture of tests/integration/conftest.py)
MakeApi = Callable[..., TestClient]


def token(api: TestClient, username: str, password: str) -> dict[str, str]:
    """Log in through ``POST /token``; returns the Authorization header."""
    answer = api.post("/token", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "bearer"
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def assert_error_shape(body: dict[str, object]) -> None:
    """Every error answers ``{"detail", "error_type", "timestamp"}``."""
    assert set(body) == {"detail", "error_type", "timestamp"}
    datetime.fromisoformat(str(body["timestamp"]).replace("Z", "+00:00"))
