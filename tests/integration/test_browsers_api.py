"""``/browsers``: sessions on demand (a real Chromium on a DevTools port), jobs' sessions listed."""

from __future__ import annotations

import time

import psutil
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright
from tests.api_helpers import MakeApi, assert_error_shape, token

from botyard.orchestrator.auth import Role, hash_password
from botyard.store.records import Activity
from botyard.store.tables import utcnow

pytestmark = pytest.mark.browser


@pytest.fixture
def api(make_api: MakeApi) -> TestClient:
    client = make_api(BROWSER_API_SESSIONS="true")
    users = client.app.state.runtime.store.users  # type: ignore[attr-defined]
    users.create("victor", hash_password("viewer-pw"), Role.VIEWER.value)
    users.create("olivia", hash_password("operator-pw"), Role.OPERATOR.value)
    return client


def test_an_operator_provisions_uses_and_terminates_a_browser(api: TestClient) -> None:
    operator = token(api, "olivia", "operator-pw")
    answer = api.post("/browsers", json={"ttl_seconds": 60}, headers=operator)
    assert answer.status_code == 201, answer.text
    session = answer.json()
    assert session["provider"] == "local" and session["status"] == "open"
    assert session["endpoint"].startswith("http://127.0.0.1:") and session["job_id"] is None
    with sync_playwright() as pw:  # the endpoint is a working DevTools browser
        browser = pw.chromium.connect_over_cdp(session["endpoint"])
        page = browser.new_context().new_page()
        page.goto("data:text/html,<title>on demand</title>")
        assert page.title() == "on demand"
        browser.close()
    listed = api.get("/browsers", headers=operator).json()
    assert [s["id"] for s in listed] == [session["id"]]
    assert psutil.pid_exists(session["pid"])
    assert api.delete(f"/browsers/{session['id']}", headers=operator).status_code == 204
    deadline = time.monotonic() + 10
    while psutil.pid_exists(session["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(session["pid"]) or (
        psutil.Process(session["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert api.get("/browsers", headers=operator).json() == []
    ended = api.get(f"/browsers/{session['id']}", headers=operator).json()
    assert ended["status"] == "closed" and ended["ended_at"] is not None
    again = api.delete(f"/browsers/{session['id']}", headers=operator)
    assert again.status_code == 404
    assert_error_shape(again.json())
    audit = api.get("/audit", headers=token(api, "admin", "admin-password")).json()
    actions = {entry["action"] for entry in audit["items"]}
    assert {"browser_provisioned", "browser_terminated"} <= actions


def test_viewers_and_bad_input_are_refused(api: TestClient) -> None:
    viewer = token(api, "victor", "viewer-pw")
    assert api.get("/browsers", headers=viewer).status_code == 403
    assert api.post("/browsers", headers=viewer).status_code == 403
    assert api.get("/browsers").status_code == 401
    operator = token(api, "olivia", "operator-pw")
    for body in ({"ttl_seconds": 1}, {"ttl_seconds": "soon"}, {"kind": "firefox"}):
        answer = api.post("/browsers", json=body, headers=operator)
        assert answer.status_code == 422, body
    assert api.get("/browsers", headers=operator).json() == []


def test_a_jobs_session_is_listed_while_its_attempt_runs_and_cannot_be_deleted(
    api: TestClient,
) -> None:
    operator = token(api, "olivia", "operator-pw")
    job = api.post(
        "/jobs", json={"automation": "accept.quick", "payload": {"n": 1}}, headers=operator
    )
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    [claimed] = store.claim(
        worker_id="w1", queues=["default"], automations=["accept.quick"], limit=1, lease_ttl=30
    )
    opened = {
        "id": "s-job",
        "provider": "local",
        "kind": "playwright",
        "warm": True,
        "ready_seconds": 0.04,
        "started_at": time.time(),
        "state": "open",
    }
    store.record_activity([Activity(claimed.id, claimed.attempt, utcnow(), "browser", opened)])
    [listed] = api.get("/browsers", headers=operator).json()
    assert (listed["id"], listed["job_id"], listed["owner"]) == ("s-job", job.json()["id"], "w1")
    refused = api.delete("/browsers/s-job", headers=operator)
    assert refused.status_code == 409 and "cancel the job" in refused.json()["detail"]
    # The attempt ends without reporting the close (its process was killed): no longer open.
    assert api.post(f"/jobs/{claimed.id}/cancel", headers=operator).status_code == 200
    assert api.get("/browsers", headers=operator).json() == []
    figures = api.get("/status").json()["browsers"]
    assert figures["open"] == 0 and figures["provider"] == "local"


def test_prometheus_reports_browser_sessions(api: TestClient) -> None:
    operator = token(api, "olivia", "operator-pw")
    session = api.post("/browsers", headers=operator).json()
    text = api.get("/metrics?format=prometheus").text
    assert 'botyard_browser_sessions{provider="local"} 1.0' in text
    assert "botyard_browser_leaks_total 0.0" in text
    api.delete(f"/browsers/{session['id']}", headers=operator)


def test_the_remote_provider_has_nothing_to_provision(make_api: MakeApi) -> None:
    api = make_api(
        BROWSER_PROVIDER="remote", BROWSER_REMOTE_URL="http://127.0.0.1:9", BROWSER_API_SESSIONS="1"
    )
    admin = token(api, "admin", "admin-password")
    answer = api.post("/browsers", headers=admin)
    assert answer.status_code == 409 and "BROWSER_REMOTE_URL" in answer.json()["detail"]


def test_sessions_through_the_api_are_off_unless_enabled(make_api: MakeApi) -> None:
    api = make_api()
    admin = token(api, "admin", "admin-password")
    answer = api.post("/browsers", headers=admin)
    assert answer.status_code == 409 and "BROWSER_API_SESSIONS=true" in answer.json()["detail"]
    assert api.get("/browsers", headers=admin).json() == []


def test_rows_an_earlier_orchestrator_left_open_are_closed_at_start(make_api: MakeApi) -> None:
    api = make_api(BROWSER_API_SESSIONS="true")
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    host = api.app.state.browsers  # type: ignore[attr-defined]
    gone = host.owner.rsplit(":", 1)[0] + ":999999999"  # this host, a pid that does not run
    session = {"id": "left-open", "provider": "local", "kind": "cdp", "started_at": time.time()}
    store.browsers.add({**session, "endpoint": "http://u:pw@127.0.0.1:1/?token=t"}, gone)
    assert store.browsers.get("left-open")["endpoint"] == "http://u:***@127.0.0.1:1/"
    host._close_orphans()
    assert store.browsers.get("left-open")["status"] == "closed"
