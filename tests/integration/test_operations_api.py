"""Operations API over a real store: rate limits with 429 + Retry-After, CORS, the audit log."""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api_helpers import MakeApi, assert_error_shape, token

from botyard.jobs import Outcome
from botyard.orchestrator.auth import Role, hash_password
from botyard.store.records import Completion
from botyard.store.tables import evidence, utcnow

ORIGIN = "https://ops.example.com"


def _from(api: TestClient, host: str) -> TestClient:
    """Another client address on the same started app (the lifespan ran once, for ``api``)."""
    return TestClient(api.app, client=(host, 40000))


# -- rate limits --------------------------------------------------------------------------


def test_token_flood_gets_429_while_the_api_keeps_answering(make_api: MakeApi) -> None:
    api = make_api(TOKEN_RATE_LIMIT="3/minute")
    admin = token(_from(api, "10.0.0.2"), "admin", "admin-password")
    attacker = _from(api, "10.0.0.1")

    def flood(_: int) -> int:
        form = {"username": "admin", "password": "guess"}
        return attacker.post("/token", data=form).status_code

    with ThreadPoolExecutor(8) as pool:
        flooding = pool.map(flood, range(120))
        # Meanwhile the orchestrator answers everyone else.
        answers = [api.get("/health").status_code, api.get("/jobs", headers=admin).status_code]
        statuses = Counter(flooding)
    assert answers == [200, 200]
    assert statuses == {401: 3, 429: 117}

    refused = attacker.post("/token", data={"username": "admin", "password": "admin-password"})
    assert refused.status_code == 429  # even the right password, until the window moves on
    assert_error_shape(refused.json())
    assert refused.json()["error_type"] == "RateLimitExceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "3/minute" in refused.json()["detail"]
    # Other addresses, and other endpoints of the attacker's address, are not limited.
    assert api.get("/jobs", headers=admin).status_code == 200
    assert attacker.get("/health").status_code == 200
    token(_from(api, "10.0.0.3"), "admin", "admin-password")
    # Refused attempts never reached the password check: only three failures were audited.
    failed = api.get("/audit", params={"action": "login_failed"}, headers=admin).json()
    assert failed["total"] == 3


def test_failed_logins_at_an_address_do_not_lock_out_another_user_there(
    make_api: MakeApi,
) -> None:
    api = make_api(TOKEN_RATE_LIMIT="3/minute")
    api.app.state.runtime.store.users.create(  # type: ignore[attr-defined]
        "vera", hash_password("viewer-pass"), Role.VIEWER.value
    )
    office = _from(api, "10.0.0.7")  # everyone behind one NAT or proxy
    wrong = [office.post("/token", data={"username": "admin", "password": "x"}) for _ in range(4)]
    assert [answer.status_code for answer in wrong] == [401, 401, 401, 429]
    for _ in range(5):  # nor do correct passwords count
        token(office, "vera", "viewer-pass")  # 429 before: the address was locked for all
    right = office.post("/token", data={"username": "admin", "password": "admin-password"})
    assert right.status_code == 429  # the guessed account, from the guessing address, waits


def test_one_address_trying_many_names_is_refused_before_the_hashes(make_api: MakeApi) -> None:
    api = make_api(LOGIN_ADDRESS_RATE_LIMIT="100/10m")
    api.app.state.runtime.store.users.create(  # type: ignore[attr-defined]
        "vera", hash_password("viewer-pass"), Role.VIEWER.value
    )
    office = _from(api, "10.0.0.8")
    token(office, "vera", "viewer-pass")  # she logs in here: a known account at this address
    names = [f"user{n}" for n in range(130)]  # each a distinct name: TOKEN_RATE_LIMIT never fills
    statuses = Counter(
        office.post("/token", data={"username": name, "password": "x"}).status_code
        for name in names
    )
    assert statuses == {401: 100, 429: 30}  # before: 130 x 401, each an argon2 verify
    refused = office.post("/token", data={"username": "admin", "password": "admin-password"})
    assert refused.status_code == 429 and "from this address" in refused.json()["detail"]
    token(office, "vera", "viewer-pass")  # who logged in here before still does
    token(_from(api, "10.0.0.9"), "admin", "admin-password")  # and other addresses are open


def test_a_limit_can_be_turned_off(make_api: MakeApi) -> None:
    api = make_api(TOKEN_RATE_LIMIT="off")
    statuses = {
        api.post("/token", data={"username": "nobody", "password": "x"}).status_code
        for _ in range(11)  # one more than the default allows
    }
    assert statuses == {401}


def test_each_limit_counts_on_its_own(make_api: MakeApi) -> None:
    api = make_api(TOKEN_RATE_LIMIT="1/minute", DATA_REQUEST_RATE_LIMIT="2/hour")
    client = _from(api, "10.0.0.9")
    body = {"request_type": "access", "subject_identifier": "ACC-1", "contact": "a@b.example"}
    answers = [client.post("/privacy/data-request", json=body).status_code for _ in range(3)]
    assert answers == [202, 202, 429]
    retry_after = int(client.post("/privacy/data-request", json=body).headers["Retry-After"])
    assert 3500 < retry_after <= 3600
    # The token limit is counted apart: its one attempt is still there.
    assert client.post("/token", data={"username": "a", "password": "b"}).status_code == 401
    assert client.post("/token", data={"username": "a", "password": "b"}).status_code == 429


# -- CORS ---------------------------------------------------------------------------------


def test_cors_answers_allowed_origins_only(make_api: MakeApi) -> None:
    api = make_api(CORS_ORIGINS=f'["{ORIGIN}/", "http://localhost:3000"]', TOKEN_RATE_LIMIT="1/m")
    preflight = api.options(
        "/jobs",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers

    simple = api.get("/health", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    other = api.get("/health", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    refused = api.options(
        "/jobs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400

    # Refusals carry the headers too, so a browser app can read the 429 and its Retry-After.
    form = {"username": "a", "password": "b"}
    api.post("/token", data=form, headers={"Origin": ORIGIN})
    limited = api.post("/token", data=form, headers={"Origin": ORIGIN})
    assert limited.status_code == 429
    assert limited.headers["access-control-allow-origin"] == ORIGIN
    assert "retry-after" in limited.headers["access-control-expose-headers"].lower()


def test_cors_credentials_when_asked(make_api: MakeApi) -> None:
    api = make_api(CORS_ORIGINS=ORIGIN, CORS_ALLOW_CREDENTIALS="true")
    answer = api.get("/health", headers={"Origin": ORIGIN})
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"


def test_no_cors_headers_by_default(make_api: MakeApi) -> None:
    api = make_api()
    answer = api.get("/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in answer.headers
    assert (
        api.options(
            "/jobs", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        ).status_code
        == 405
    )


# -- audit --------------------------------------------------------------------------------


def test_audit_is_for_admins_newest_first_with_filters(make_api: MakeApi, store_url: str) -> None:
    api = make_api(store_url)
    users = api.app.state.runtime.store.users  # type: ignore[attr-defined]
    users.create("olivia", hash_password("operator-pw"), Role.OPERATOR.value)
    users.create("victor", hash_password("viewer-pw"), Role.VIEWER.value)
    assert api.post("/token", data={"username": "victor", "password": "nope"}).status_code == 401
    viewer = token(api, "victor", "viewer-pw")
    operator = token(api, "olivia", "operator-pw")
    admin = token(api, "admin", "admin-password")

    assert api.get("/audit").status_code == 401
    for who in (viewer, operator):
        denied = api.get("/audit", headers=who)
        assert denied.status_code == 403
        assert_error_shape(denied.json())

    page = api.get("/audit", headers=admin).json()
    assert [(e["action"], e["actor"]) for e in page["items"]] == [
        ("login", "admin"),
        ("login", "olivia"),
        ("login", "victor"),
        ("login_failed", "victor"),
    ]
    assert page["total"] == 4 and (page["limit"], page["offset"]) == (50, 0)
    newest = page["items"][0]
    assert newest["client"] == "testclient" and newest["id"] > page["items"][1]["id"]
    datetime.fromisoformat(newest["at"])

    failed = api.get("/audit", params={"action": "login_failed"}, headers=admin).json()
    assert failed["total"] == 1 and [e["actor"] for e in failed["items"]] == ["victor"]
    victor = api.get("/audit", params={"actor": "victor"}, headers=admin).json()
    assert [e["action"] for e in victor["items"]] == ["login", "login_failed"]
    both = api.get("/audit", params={"actor": "victor", "action": "login"}, headers=admin)
    assert both.json()["total"] == 1
    second = api.get("/audit", params={"limit": 1, "offset": 1}, headers=admin).json()
    assert second["total"] == 4 and [e["actor"] for e in second["items"]] == ["olivia"]
    assert api.get("/audit", params={"limit": 0}, headers=admin).status_code == 422

    job = api.post(
        "/jobs", json={"automation": "accept.quick", "payload": {"n": 1}}, headers=operator
    ).json()
    submitted = api.get("/audit", params={"action": "job_submitted"}, headers=admin).json()
    assert submitted["items"][0]["target"] == f"job:{job['id']}"
    assert submitted["items"][0]["actor"] == "olivia"
    assert "/audit" in api.get("/openapi.json").json()["paths"]


# -- secrets in logs ----------------------------------------------------------------------


def test_the_app_masks_its_secrets_in_logs(
    make_api: MakeApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = f"sqlite:///{tmp_path}/botyard.db"
    api = make_api(JWT_SECRET=None, BOTYARD_TEST_TOKEN="token-from-the-environment")
    generated = (tmp_path / "jwt-secret").read_text().strip()  # JWT_SECRET unset: generated
    log = logging.getLogger("botyard.test.operations")
    with caplog.at_level(logging.INFO):
        log.info("signing with %s for %s", generated, "admin-password")
        log.info(f"token-from-the-environment in {database}")
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == [
        "signing with *** for ***",
        f"*** in {database}",
    ]
    assert api.get("/health").status_code == 200


# -- seed 002's troubleshooting endpoints and seed 004's processing view ---------------------


def test_scheduler_endpoints_answer_as_seed_002_shows(make_api: MakeApi, store_url: str) -> None:
    api = make_api(store_url)
    status = api.get("/scheduler").json()  # no token needed
    assert status["running"] is True and status["job_count"] == 5
    assert [j["id"] for j in status["jobs"]] == [
        "poll_job_queue",
        "collect_metrics",
        "cleanup_old_evidence",
        "recover_stale_jobs",
        "poll_worker_job_status",
    ]
    first = status["jobs"][0]
    assert set(first) >= {"id", "function", "trigger", "next_run"}
    assert first["trigger"] == "interval[0:00:30]" and first["next_run"].endswith("Z")
    assert status["jobs"][2]["trigger"] == "cron"
    assert status["leader"] == status["replica"] and status["is_leader"] is True

    admin = token(api, "admin", "admin-password")
    assert api.post("/process", headers=admin).json() == {"status": "Job processing initiated"}
    assert api.post("/recover", headers=admin).json() == {"status": "success", "recovered_jobs": 0}
    assert api.post("/scheduler/reset", headers=admin).json() == {
        "status": "success",
        "message": "Scheduler reset and reconfigured successfully",
        "job_count": 5,
    }
    for path in ("/process", "/recover", "/scheduler/reset"):
        denied = api.post(path, headers={"Authorization": "Bearer invalid_token"})
        assert denied.status_code == 401
        assert denied.json()["detail"] == "Could not validate credentials"


def test_roles_on_the_operations_endpoints(make_api: MakeApi) -> None:
    api = make_api()
    users = api.app.state.runtime.store.users  # type: ignore[attr-defined]
    users.create("olivia", hash_password("operator-pw"), Role.OPERATOR.value)
    users.create("victor", hash_password("viewer-pw"), Role.VIEWER.value)
    operator, viewer = token(api, "olivia", "operator-pw"), token(api, "victor", "viewer-pw")
    assert api.post("/scheduler/reset", headers=operator).status_code == 403
    assert api.post("/process", headers=operator).status_code == 200
    for path in ("/process", "/recover", "/jobs/retry"):
        answer = api.post(path, headers=viewer)
        assert answer.status_code == 403
        assert_error_shape(answer.json())
    assert api.get("/processing/status", headers=viewer).status_code == 200


def test_bulk_retry_and_processing_status(make_api: MakeApi, store_url: str) -> None:
    api = make_api(store_url)
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    admin = token(api, "admin", "admin-password")
    ids = [
        api.post("/jobs", json={"automation": name, "payload": payload}, headers=admin).json()["id"]
        for name, payload in [
            ("accept.quick", {"n": 1}),
            ("accept.quick", {"n": 2}),
            ("accept.sleepy", {"seconds": 1}),
        ]
    ]
    claimed = store.claim(
        "w",
        queues=["default"],
        automations=["accept.quick", "accept.sleepy"],
        limit=3,
        lease_ttl=30,
    )
    store.finish(
        [
            Completion(c.id, c.attempt, Outcome.BUSINESS_ERROR, c.max_attempts, c.idempotent)
            for c in claimed
        ]
    )
    status = api.get("/processing/status", headers=admin).json()
    assert status["counts"]["failed"] == 3
    assert status["throughput"]["finished"] == 3 and status["throughput"]["by_status"] == {
        "failed": 3
    }
    assert {a["job_id"] for a in status["recent_activity"]} == set(ids)

    only_sleepy = api.post(
        "/jobs/retry", json={"automation": "accept.sleepy"}, headers=admin
    ).json()
    assert only_sleepy == {"status": "success", "retried": 1, "job_ids": [ids[2]]}
    everything = api.post("/jobs/retry", headers=admin).json()
    assert everything["retried"] == 2 and everything["job_ids"] == ids[:2]
    assert api.post("/jobs/retry", json={"request_id": 1}, headers=admin).status_code == 422
    assert api.get("/processing/status", headers=admin).json()["counts"]["queued"] == 3


def test_status_and_metrics_as_seed_002_shows(make_api: MakeApi, store_url: str) -> None:
    api = make_api(store_url)
    runtime = api.app.state.runtime  # type: ignore[attr-defined]
    status = api.get("/status").json()  # no token needed
    assert status["status"] == "red" and "no worker online" in status["reasons"]
    assert status["scheduler"]["running"] is True and status["store"]["ok"] is True

    runtime.store.workers.register(
        "w-1", hostname="h", mode="pull", pid=1, automations=["accept.quick"],
        queues=["default"], capacity=4, version="x",
    )  # fmt: skip
    admin = token(api, "admin", "admin-password")
    for n in range(3):
        api.post("/jobs", json={"automation": "accept.quick", "payload": {"n": n}}, headers=admin)
    status = api.get("/status").json()
    assert status["status"] == "green", status["reasons"]
    assert status["workers"]["online"] == 1 and status["workers"]["capacity"] == 4
    assert status["queue"] == {"depth": 3, "by_queue": {"default": 3}}
    assert status["version"] and status["uptime"].count(":") == 2

    api.app.state.maintenance.collect_metrics()  # type: ignore[attr-defined]
    body = api.get("/metrics").json()
    assert set(body) == {"metrics", "averages", "current"}
    point = body["metrics"][0]
    assert set(point) == {
        "timestamp",
        "queued_jobs",
        "running_jobs",
        "completed_jobs",
        "failed_jobs",
    }
    assert point["queued_jobs"] == 3 and body["averages"]["queued_jobs"] == 3.0
    current = body["current"]
    assert current["status"] == "online" and current["workers"] == {"w-1": "online"}
    assert (current["queued_jobs"], current["running_jobs"]) == (3, 0)
    assert set(current) >= {"uptime", "completed_jobs", "failed_jobs", "version"}


def test_job_evidence_lists_and_downloads_with_auth(
    make_api: MakeApi, store_url: str, tmp_path: Path
) -> None:
    api = make_api(store_url)
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    admin = token(api, "admin", "admin-password")
    job_id = api.post(
        "/jobs", json={"automation": "accept.quick", "payload": {"n": 1}}, headers=admin
    ).json()["id"]
    folder = tmp_path / "evidence" / str(job_id) / "1"
    folder.mkdir(parents=True)
    (folder / "login.png").write_bytes(b"\x89PNG fake")
    outside = tmp_path / "secret.txt"
    outside.write_text("not evidence")
    with store.engine.begin() as conn:
        for path, kind in ((folder / "login.png", "image/png"), (outside, "text/plain")):
            conn.execute(
                evidence.insert().values(
                    job_id=job_id, attempt=1, step="logging in", name=path.name, path=str(path),
                    content_type=kind, size=path.stat().st_size, created_at=utcnow(),
                )
            )  # fmt: skip
    listed = api.get(f"/jobs/{job_id}/screenshots", headers=admin).json()
    assert listed["job_id"] == job_id
    first, second = listed["screenshots"]
    assert (first["name"], first["step"], first["content_type"]) == (
        "login.png",
        "logging in",
        "image/png",
    )
    assert api.get(first["url"]).status_code == 401  # the download needs the token too
    download = api.get(first["url"], headers=admin)
    assert download.status_code == 200 and download.content == b"\x89PNG fake"
    assert download.headers["content-type"] == "image/png"
    assert api.get(second["url"], headers=admin).status_code == 404  # outside the evidence folder
    assert api.get("/jobs/999/screenshots", headers=admin).status_code == 404
