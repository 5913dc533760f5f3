"""Text and numbers the stores cannot hold are refused with 422 before anything is stored.

A lone UTF-16 surrogate (what JavaScript sends for a string cut inside an emoji) used to be
stored by SQLite, run by a worker, answered with a 500, and then break every listing that
showed it; a NUL broke PostgreSQL; ids past 2^63 and JSON nested hundreds of levels deep broke
both. These go through the whole app on both stores.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.api_helpers import MakeApi, assert_error_shape, token
from tests.integration.test_dashboard_pages import log_in

from botyard.orchestrator.auth import Role, hash_password
from botyard.store.records import NewJob
from botyard.store.tables import audit_events, jobs, privacy_requests

BIG = 2**63  # one past the largest 64-bit id


@pytest.fixture
def api(make_api: MakeApi, store_url: str) -> TestClient:
    client = make_api(store_url)
    users = client.app.state.runtime.store.users  # type: ignore[attr-defined]
    users.create("olivia", hash_password("operator-pw"), Role.OPERATOR.value)
    return client


@pytest.fixture
def admin(api: TestClient) -> dict[str, str]:
    return token(api, "admin", "admin-password")


def count(api: TestClient, table: Any) -> int:
    engine = api.app.state.runtime.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def refused(answer: Any, *loc: object, kind: str | None = None) -> None:
    """A 422 in the API's shape, with an error under ``loc`` (of type ``kind``)."""
    assert answer.status_code == 422, answer.text
    assert_error_shape(answer.json())
    errors = [e for e in answer.json()["detail"] if e["loc"][: len(loc)] == list(loc)]
    assert errors, answer.text
    if kind is not None:
        assert [e["type"] for e in errors] == [kind], answer.text


def post_raw(api: TestClient, path: str, body: str | bytes, headers: dict[str, str]) -> Any:
    """A JSON body exactly as given (escapes included), as a browser's fetch() would send it."""
    return api.post(path, content=body, headers={**headers, "Content-Type": "application/json"})


def test_a_lone_surrogate_is_refused_and_nothing_is_stored_or_run(
    api: TestClient, admin: dict[str, str]
) -> None:
    body = '{"automation": "accept.evidence", "payload": {"text": "Order for \\ud83d"}}'
    for _ in range(3):
        refused(
            post_raw(api, "/jobs", body, admin), "body", "payload", "text", kind="lone_surrogate"
        )
    assert count(api, jobs) == 0
    listing = api.get("/jobs", headers=admin)
    assert listing.status_code == 200 and listing.json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (
            '{"automation": "accept.evidence", "payload": {"\\udc00": "x"}}',
            ["body", "payload"],
            "lone_surrogate",
        ),
        (
            '{"automation": "accept.evidence", "payload": {"text": "a\\u0000b"}}',
            ["body", "payload", "text"],
            "nul_character",
        ),
        (
            '{"automation": "accept.evidence", "payload": {"text": "x"},'
            ' "idempotency_key": "k\\u0000"}',
            ["body", "idempotency_key"],
            "nul_character",
        ),
        (
            '{"automation": "accept.evidence", "payload": {"text": ["ok", {"deep": "\\ud800"}]}}',
            ["body", "payload", "text", 1, "deep"],
            "lone_surrogate",
        ),
        # raw UTF-8 bytes of a surrogate: json.loads would let them through as one
        (
            b'{"automation": "accept.evidence", "payload": {"text": "\xed\xa0\xbd"}}',
            ["body", "payload", "text"],
            "lone_surrogate",
        ),
    ],
    ids=["surrogate-key", "nul-value", "nul-idempotency-key", "nested-surrogate", "raw-bytes"],
)
def test_bad_text_anywhere_in_a_body_is_refused(
    api: TestClient, admin: dict[str, str], body: str | bytes, loc: list[object], kind: str
) -> None:
    refused(post_raw(api, "/jobs", body, admin), *loc, kind=kind)
    assert count(api, jobs) == 0


def test_a_well_formed_surrogate_pair_is_an_emoji_and_is_kept(
    api: TestClient, admin: dict[str, str]
) -> None:
    body = '{"automation": "accept.evidence", "payload": {"text": "Order for \\ud83d\\ude00"}}'
    answer = post_raw(api, "/jobs", body, admin)
    assert answer.status_code == 201, answer.text
    assert answer.json()["payload"]["text"] == "Order for \U0001f600"


@pytest.mark.parametrize(
    ("method", "path", "loc"),
    [
        ("get", "/jobs?automation=a%00b", ["query", "automation"]),
        ("get", "/audit?actor=%00", ["query", "actor"]),
        ("get", "/workers/w%00x", ["path"]),
        ("get", "/privacy/requests/PR-%00", ["path"]),
        ("get", "/browsers/s%00", ["path"]),
    ],
)
def test_a_nul_in_the_url_is_refused(
    api: TestClient, admin: dict[str, str], method: str, path: str, loc: list[object]
) -> None:
    refused(api.request(method, path, headers=admin), *loc)


def test_a_nul_in_a_form_field_is_refused_and_not_audited(api: TestClient) -> None:
    before = count(api, audit_events)
    answer = api.post("/token", data={"username": "ad\x00min", "password": "x"})
    refused(answer, "body", "username")
    assert count(api, audit_events) == before


def test_a_nul_in_a_header_is_refused(api: TestClient, admin: dict[str, str]) -> None:
    refused(api.get("/jobs", headers={**admin, "X-Request-Id": "a\x00b"}), "header")


def test_a_second_content_type_does_not_hide_the_body_from_the_rules(
    api: TestClient, admin: dict[str, str]
) -> None:
    # FastAPI reads the first Content-Type (JSON); the rules once read the last (text) and
    # let the surrogate through to the store.
    body = b'{"automation": "accept.evidence", "payload": {"text": "\\ud83d"}}'
    headers = [
        *admin.items(),
        ("Content-Type", "application/json"),
        ("Content-Type", "text/plain"),
    ]
    answer = api.post("/jobs", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert_error_shape(answer.json())
    assert "content-type" in answer.json()["detail"]
    assert count(api, jobs) == 0


@pytest.mark.parametrize(
    "repeated",
    [
        [("Content-Length", "2"), ("Content-Length", "2")],
        [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
    ],
)
def test_a_repeated_body_header_is_refused(
    api: TestClient, admin: dict[str, str], repeated: list[tuple[str, str]]
) -> None:
    headers = [*admin.items(), ("Content-Type", "application/json"), *repeated]
    answer = api.post("/jobs", content=b"{}", headers=headers)
    assert answer.status_code == 400, answer.text
    assert_error_shape(answer.json())
    assert count(api, jobs) == 0


def test_a_data_request_with_a_surrogate_stores_nothing(api: TestClient) -> None:
    body = (
        '{"request_type": "access", "subject_identifier": "id \\ud83d",'
        ' "contact": "someone@example.org"}'
    )
    refused(
        post_raw(api, "/privacy/data-request", body, {}),
        "body",
        "subject_identifier",
        kind="lone_surrogate",
    )
    assert count(api, privacy_requests) == 0


def test_the_dashboards_payload_field_follows_the_same_rules(api: TestClient) -> None:
    csrf = log_in(api, "olivia", "operator-pw")
    for payload in ['{"text": "Order for \\ud83d"}', '{"text": "a\\u0000"}', "[" * 65 + "]" * 65]:
        answer = api.post(
            "/ui/jobs", data={"csrf": csrf, "automation": "accept.evidence", "payload": payload}
        )
        assert answer.status_code == 422, payload
        assert "Internal" not in answer.text
    assert count(api, jobs) == 0


@pytest.mark.parametrize("depth", [65, 255, 989, 5000, 200_000])
def test_json_nested_past_the_limit_is_refused(
    api: TestClient, admin: dict[str, str], depth: int
) -> None:
    nested = "[" * depth + "]" * depth
    body = f'{{"automation": "accept.evidence", "payload": {{"text": {nested}}}}}'
    answer = post_raw(api, "/jobs", body, admin)
    refused(answer, "body")
    assert "64" in json.dumps(answer.json()["detail"])
    assert count(api, jobs) == 0


def test_json_at_the_depth_limit_gets_through(api: TestClient, admin: dict[str, str]) -> None:
    # The body is level 1, the payload 2, its "text" 3: 61 more lists make 64 levels. The
    # automation then refuses a list for a string: the body itself got through.
    nested = "[" * 62 + "]" * 62
    body = f'{{"automation": "accept.evidence", "payload": {{"text": {nested}}}}}'
    answer = post_raw(api, "/jobs", body, admin)
    refused(answer)
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", "payload", "text"]]


@pytest.mark.parametrize(
    "path",
    [
        f"/jobs/{BIG}",
        f"/jobs/{BIG}/logs",
        f"/jobs/1/logs?after={BIG}",
        f"/jobs/{BIG}/screenshots",
        f"/evidence/{BIG}",
        "/jobs?offset=14322642267225309184",
        f"/audit?offset={BIG}",
        f"/privacy/requests?offset={BIG}",
    ],
)
def test_numbers_past_64_bits_are_refused(
    api: TestClient, admin: dict[str, str], path: str
) -> None:
    refused(api.get(path, headers=admin))


def test_the_largest_id_is_just_not_found(api: TestClient, admin: dict[str, str]) -> None:
    answer = api.get(f"/jobs/{BIG - 1}", headers=admin)
    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/jobs/{BIG}/cancel", None),
        (f"/jobs/{BIG}/retry", None),
        (f"/jobs/{BIG}/resolve", {"status": "failed", "note": "n"}),
    ],
)
def test_actions_on_ids_past_64_bits_are_refused(
    api: TestClient, admin: dict[str, str], path: str, body: dict[str, str] | None
) -> None:
    refused(api.post(path, json=body, headers=admin))


def test_an_agent_endpoint_that_is_no_url_is_refused(
    api: TestClient, admin: dict[str, str]
) -> None:
    for endpoint in ["http://[::1", "http://host:99999", "http://exa mple.org"]:
        refused(api.post("/workers/agents", json={"endpoint": endpoint}, headers=admin), "body")


def test_a_row_stored_with_a_lone_surrogate_still_reads_back(
    make_api: MakeApi, tmp_path: Path
) -> None:
    """What SQLite kept before these rules (PostgreSQL's jsonb never took one): the list, the
    job and its dashboard page answer, with U+FFFD in its place."""
    api = make_api()
    api.app.state.runtime.store.users.create(  # type: ignore[attr-defined]
        "olivia", hash_password("operator-pw"), Role.OPERATOR.value
    )
    admin = token(api, "admin", "admin-password")
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    job_id = store.submit(NewJob(automation="accept.evidence", payload={"text": "ok"}))[0].id
    # What SQLAlchemy's JSON type wrote for the bad payload: an ASCII escape, as sent.
    with sqlite3.connect(tmp_path / "botyard.db") as raw:
        raw.execute(
            "UPDATE jobs SET payload = ?, result = ? WHERE id = ?",
            ('{"text": "Order for \\ud83d"}', '{"\\udc00": "\\ud83d"}', job_id),
        )
    listing = api.get("/jobs", headers=admin)
    assert listing.status_code == 200, listing.text
    assert listing.json()["items"][0]["payload"] == {"text": "Order for \ufffd"}
    detail = api.get(f"/jobs/{job_id}", headers=admin)
    assert detail.status_code == 200, detail.text
    assert detail.json()["result"] == {"\ufffd": "\ufffd"}
    log_in(api, "olivia", "operator-pw")
    assert api.get("/ui/jobs").status_code == 200
    shown = api.get(f"/ui/jobs/{job_id}")
    assert shown.status_code == 200 and "Order for \\ufffd" in shown.text  # as JSON shows it


@pytest.mark.parametrize(
    ("when", "accepted"),
    [
        ("2026-01-01T00:00:00", True),  # naive: UTC
        ("0001-01-01T00:00:00Z", True),
        ("9999-12-31T23:59:59Z", True),
        ("0001-01-01T00:00:00+01:00", False),  # before year 1 once in UTC
        ("9999-12-31T23:59:59-01:00", False),  # after year 9999 once in UTC
    ],
)
def test_times_are_taken_in_utc_or_refused(
    api: TestClient, admin: dict[str, str], when: str, accepted: bool
) -> None:
    """``since`` and ``not_before`` used to reach the store naive, or past what UTC can hold."""
    answers = [
        api.get("/jobs", params={"since": when}, headers=admin),
        api.post("/jobs/retry", json={"since": when}, headers=admin),
        api.post(
            "/jobs",
            json={"automation": "accept.quick", "payload": {"n": 1}, "not_before": when},
            headers=admin,
        ),
    ]
    if accepted:
        assert [a.status_code for a in answers] == [200, 200, 201], [a.text for a in answers]
    else:
        for answer in answers:
            refused(answer)
        assert count(api, jobs) == 0
