"""The orchestrator API over a real store: auth, roles, validation, the jobs lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from tests.api_helpers import assert_error_shape, token

from botyard.orchestrator.app import create_app
from botyard.orchestrator.auth import Role, hash_password
from botyard.settings import Settings

SECRET = "api-tests-secret-that-is-long-enough-for-hs256"
AUTOMATIONS = str(Path(__file__).parents[1] / "acceptance" / "acceptance_automations.py")


@pytest.fixture
def api(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("DATABASE_URL", store_url)
    monkeypatch.setenv("BOTYARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("ADMIN_USERNAME", "admin")
    monkeypatch.setenv("ADMIN_PASSWORD", "admin-password")
    monkeypatch.setenv("BOTYARD_AUTOMATIONS", AUTOMATIONS)
    with TestClient(create_app(Settings())) as client:
        users = client.app.state.runtime.store.users  # type: ignore[attr-defined]
        users.create("olivia", hash_password("operator-pw"), Role.OPERATOR.value)
        users.create("victor", hash_password("viewer-pw"), Role.VIEWER.value)
        yield client


def test_health_endpoints_need_notoken(api: TestClient) -> None:
    body = api.get("/health").json()
    assert body["status"] == "healthy"
    datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert api.get("/health/live").status_code == 200
    ready = api.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok"
    assert "/jobs" in api.get("/openapi.json").json()["paths"]


def test_wrong_password_is_401_and_audited(api: TestClient) -> None:
    answer = api.post("/token", data={"username": "admin", "password": "nope"})
    assert answer.status_code == 401
    assert answer.json()["detail"] == "Incorrect username or password"
    assert_error_shape(answer.json())
    audit = api.app.state.runtime.store.audit.recent()  # type: ignore[attr-defined]
    assert audit[0].action == "login_failed" and audit[0].actor == "admin"


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        jwt.encode(
            {"sub": "admin", "role": "admin", "exp": datetime.now(UTC) + timedelta(hours=1)},
            "wrong-secret-wrong-secret-wrong-secret!",
        ),
        jwt.encode(
            {"sub": "admin", "role": "admin", "exp": datetime.now(UTC) + timedelta(hours=1)},
            None,
            algorithm="none",
        ),
        jwt.encode(
            {"sub": "admin", "role": "admin", "exp": datetime.now(UTC) - timedelta(minutes=1)},
            SECRET,
        ),
        jwt.encode(
            {"sub": "ghost", "role": "admin", "exp": datetime.now(UTC) + timedelta(hours=1)}, SECRET
        ),
    ],
    ids=["missing", "garbage", "bad-signature", "alg-none", "expired", "unknown-user"],
)
def test_bad_tokens_are_401(api: TestClient, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = api.get("/jobs", headers=headers)
    assert answer.status_code == 401
    assert_error_shape(answer.json())
    if token:
        assert answer.json()["detail"] == "Could not validate credentials"


def test_viewer_reads_but_cannot_act(api: TestClient) -> None:
    viewer = token(api, "victor", "viewer-pw")
    assert api.get("/jobs", headers=viewer).status_code == 200
    answer = api.post(
        "/jobs", json={"automation": "accept.quick", "payload": {"n": 1}}, headers=viewer
    )
    assert answer.status_code == 403
    assert_error_shape(answer.json())
    assert api.get("/jobs", headers=viewer).json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"automation": "accept.quick", "payload": {"n": "seven"}}, ["body", "payload", "n"]),
        ({"automation": "accept.quick", "payload": {}}, ["body", "payload", "n"]),
        (
            {"automation": "accept.quick", "payload": {"n": 1, "typo": 2}},
            ["body", "payload", "typo"],
        ),
        ({"automation": "accept.nothing", "payload": {}}, ["body", "automation"]),
        ({"automation": "accept.quick", "payload": [1, 2]}, ["body", "payload"]),
        (
            {"automation": "accept.quick", "payload": {"n": 1}, "priority": "high"},
            ["body", "priority"],
        ),
        (
            {"automation": "accept.quick", "payload": {"n": 1}, "surprise": True},
            ["body", "surprise"],
        ),
    ],
)
def test_bad_submissions_are_422_and_create_nothing(
    api: TestClient, body: dict[str, object], loc: list[str]
) -> None:
    operator = token(api, "olivia", "operator-pw")
    answer = api.post("/jobs", json=body, headers=operator)
    assert answer.status_code == 422, answer.text
    assert_error_shape(answer.json())
    assert any(e["loc"] == loc for e in answer.json()["detail"]), answer.json()
    assert api.get("/jobs", headers=operator).json()["total"] == 0


def test_body_over_one_mebibyte_is_413(api: TestClient) -> None:
    operator = token(api, "olivia", "operator-pw")
    big = {"automation": "accept.quick", "payload": {"n": 1, "blob": "x" * (1024 * 1024)}}
    answer = api.post("/jobs", json=big, headers=operator)
    assert answer.status_code == 413
    assert_error_shape(answer.json())


def test_submit_is_idempotent_by_key(api: TestClient) -> None:
    operator = token(api, "olivia", "operator-pw")
    body = {"automation": "accept.quick", "payload": {"n": 1}, "idempotency_key": "order-42"}
    first = api.post("/jobs", json=body, headers=operator)
    again = api.post("/jobs", json={**body, "payload": {"n": 2}}, headers=operator)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["payload"] == {"n": 1}
    assert api.get("/jobs", headers=operator).json()["total"] == 1


def test_job_fields_and_defaults_from_the_automation(api: TestClient) -> None:
    operator = token(api, "olivia", "operator-pw")
    job = api.post(
        "/jobs",
        json={
            "automation": "accept.sleepy",
            "payload": {"seconds": "1.5"},
            "queue": "bulk",
            "priority": 5,
        },
        headers=operator,
    ).json()
    assert job["status"] == "queued" and job["queue"] == "bulk" and job["priority"] == 5
    assert job["payload"] == {"seconds": 1.5, "marker_dir": ""}  # coerced and completed
    assert (job["provider"], job["action"]) == ("accept", "sleepy")
    assert job["max_attempts"] == 3 and job["timeout"] == 120 and job["idempotent"] is False
    detail = api.get(f"/jobs/{job['id']}", headers=operator).json()
    assert detail["attempts"] == [] and detail["steps"] == []


def test_list_filters_and_pagination(api: TestClient) -> None:
    operator = token(api, "olivia", "operator-pw")
    for n in range(5):
        api.post(
            "/jobs", json={"automation": "accept.quick", "payload": {"n": n}}, headers=operator
        )
    api.post(
        "/jobs",
        json={"automation": "accept.sleepy", "payload": {"seconds": 1}, "queue": "slow"},
        headers=operator,
    )
    page = api.get("/jobs", params={"limit": 2, "offset": 1}, headers=operator).json()
    assert page["total"] == 6 and len(page["items"]) == 2 and page["items"][0]["id"] == 5
    assert api.get("/jobs", params={"queue": "slow"}, headers=operator).json()["total"] == 1
    assert (
        api.get("/jobs", params={"automation": "accept.quick"}, headers=operator).json()["total"]
        == 5
    )
    assert (
        api.get(
            "/jobs", params={"provider": "accept", "status": "queued"}, headers=operator
        ).json()["total"]
        == 6
    )
    assert api.get("/jobs", params={"status": "bogus"}, headers=operator).status_code == 422


def test_cancel_retry_resolve_rules(api: TestClient) -> None:
    operator = token(api, "olivia", "operator-pw")
    job = api.post(
        "/jobs", json={"automation": "accept.quick", "payload": {"n": 1}}, headers=operator
    ).json()
    assert api.post(f"/jobs/{job['id']}/retry", headers=operator).status_code == 409
    assert (
        api.post(
            f"/jobs/{job['id']}/resolve",
            json={"status": "succeeded", "note": "x"},
            headers=operator,
        ).status_code
        == 409
    )
    cancelled = api.post(f"/jobs/{job['id']}/cancel", headers=operator)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/jobs/{job['id']}/cancel", headers=operator)
    assert again.status_code == 409
    assert_error_shape(again.json())
    assert api.get("/jobs/999999", headers=operator).status_code == 404
    assert api.get(f"/jobs/{job['id']}/logs", headers=operator).json() == {
        "job_id": job["id"],
        "lines": [],
    }
    actions = [e.action for e in api.app.state.runtime.store.audit.recent()]  # type: ignore[attr-defined]
    assert "job_submitted" in actions and "job_cancelled" in actions


def test_workers_listing(api: TestClient) -> None:
    viewer = token(api, "victor", "viewer-pw")
    api.app.state.runtime.store.workers.register(  # type: ignore[attr-defined]
        "w-1",
        hostname="h",
        mode="pull",
        pid=1,
        automations=["accept.quick"],
        queues=["default"],
        capacity=4,
        version="x",
    )
    workers = api.get("/workers", headers=viewer).json()
    assert (
        workers[0]["id"] == "w-1" and workers[0]["online"] is True and workers[0]["capacity"] == 4
    )
    assert api.get("/workers/w-1", headers=viewer).json()["mode"] == "pull"
    assert api.get("/workers/nope", headers=viewer).status_code == 404
