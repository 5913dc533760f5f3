"""Every way ``POST /task`` refuses a task, with its status and message (seed 000)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api_helpers import assert_error_shape

from botyard.errors import UnsafeUrl
from botyard.settings import StandbySettings
from botyard.standby import TaskRunner, create_standby_app
from botyard.standby.fetch import check_url, safe_url

TOKEN = "standby-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = "https://8.8.8.8/automation.py"  # an address literal: no DNS needed


@pytest.fixture
def client() -> TestClient:
    settings = StandbySettings(TASK_AUTH_TOKEN=TOKEN)  # type: ignore[call-arg]
    return TestClient(create_standby_app(settings, TaskRunner(settings)))


def test_health_has_seed_000s_fields(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "healthy" and body["mode"] == "standby"
    assert body["task_executing"] is False and body["last_task"] is None
    assert "T" in body["timestamp"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
    ids=["missing", "wrong", "no-scheme", "basic"],
)
def test_a_wrong_token_is_401(client: TestClient, headers: dict[str, str]) -> None:
    body = {"script_url": PUBLIC, "script_name": "a.py"}
    answer = client.post("/task", json=body, headers=headers)
    assert answer.status_code == 401
    assert_error_shape(answer.json())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"script_name": "a.py"}, "script_url is required"),
        ({"script_url": "http://8.8.8.8/a.py", "script_name": "a.py"}, "https://"),
        ({"script_url": "ftp://8.8.8.8/a.py", "script_name": "a.py"}, "https://"),
        ({"script_url": "https:///a.py", "script_name": "a.py"}, "no host"),
        ({"script_url": "https://u:p@8.8.8.8/a.py", "script_name": "a.py"}, "credentials"),
        ({"script_url": "https://127.0.0.1/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://[::1]/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://10.0.0.7/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://192.168.1.20/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://169.254.169.254/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://100.64.0.1/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://[::ffff:127.0.0.1]/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://localhost/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://[64:ff9b::a00:1]/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://[2002:7f00:1::]/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://[::7f00:1]/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": "https://[fec0::1]/a.py", "script_name": "a.py"}, "non-public"),
        ({"script_url": PUBLIC}, "script_name must be"),
        ({"script_url": PUBLIC, "script_name": "../a.py"}, "script_name must be"),
        ({"script_url": PUBLIC, "script_name": "dir/a.py"}, "script_name must be"),
        ({"script_url": PUBLIC, "script_name": "a..py"}, "script_name must be"),
        ({"script_url": PUBLIC, "script_name": ".hidden.py"}, "script_name must be"),
        ({"script_url": PUBLIC, "script_name": "run.sh"}, "script_name must be"),
        ({"script_url": PUBLIC, "script_name": "a.py\n"}, "script_name must be"),
        ({"script_url": PUBLIC, "script_name": "a.py", "payload": [1]}, "JSON object"),
        ({"script_url": PUBLIC, "script_name": "a.py", "payload": "x"}, "JSON object"),
        (
            {"script_url": PUBLIC, "script_name": "a.py", "payload": {"x": "a" * (1 << 20)}},
            "payload is",
        ),
        ({"script_url": PUBLIC, "script_name": "a.py", "extra": 1}, "unknown fields"),
        ([PUBLIC], "JSON object"),
    ],
)
def test_invalid_tasks_are_400(client: TestClient, body: Any, message: str) -> None:
    answer = client.post("/task", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert_error_shape(answer.json())
    assert message in answer.json()["detail"]
    assert client.get("/health").json()["task_executing"] is False


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    answer = client.post("/task", content=b"{not json", headers=AUTH)
    assert answer.status_code == 400 and answer.json()["detail"] == "the body is not JSON"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nest at most"),
        (b'{"script_url": "https://8.8.8.8/a.py", "payload": {"x": "a\\u0000b"}}', "NUL"),
        (b'{"script_url": "https://8.8.8.8/a.py", "payload": {"x": "\\ud83d"}}', "surrogate"),
    ],
    ids=["deep", "nul", "lone-surrogate"],
)
def test_json_the_api_refuses_is_400_here_too(client: TestClient, raw: bytes, message: str) -> None:
    # A deep document went to json.loads, whose RecursionError is no ValueError: a 500.
    answer = client.post("/task", content=raw, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert_error_shape(answer.json())
    assert message in answer.json()["detail"]
    assert client.get("/health").json()["task_executing"] is False


def test_private_addresses_pass_only_when_allowed() -> None:
    with pytest.raises(UnsafeUrl):
        check_url("https://127.0.0.1:8443/a.py", allow_private=False)
    assert check_url("https://127.0.0.1:8443/a.py", allow_private=True) == ("127.0.0.1", 8443)
    assert check_url(PUBLIC, allow_private=False) == ("8.8.8.8", 443)


def test_urls_lose_their_query_and_credentials_in_messages() -> None:
    signed = "https://user:pw@scripts.example.com:8443/a.py?X-Amz-Signature=abc#frag"
    assert safe_url(signed) == "https://scripts.example.com:8443/a.py"
