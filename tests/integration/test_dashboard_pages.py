"""The dashboard's pages through the app: sessions, CSRF, roles, escaping, evidence files.

The browser-driven tests are in tests/acceptance/test_dashboard.py; these check the rules
behind them without a browser.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api_helpers import MakeApi

from botyard.orchestrator.auth import Role, hash_password
from botyard.store.records import JobFilter, NewJob
from botyard.store.tables import evidence


@pytest.fixture
def api(make_api: MakeApi) -> TestClient:
    client = make_api()
    users = client.app.state.runtime.store.users  # type: ignore[attr-defined]
    users.create("vera", hash_password("viewer-pw"), Role.VIEWER.value)
    users.create("olivia", hash_password("operator-pw"), Role.OPERATOR.value)
    return client


def log_in(api: TestClient, username: str, password: str) -> str:
    """Log in through the form; returns the CSRF token the pages carry."""
    answer = api.post(
        "/ui/login", data={"username": username, "password": password}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    page = api.get("/ui/jobs").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_pages_need_a_login_and_come_back_after_it(api: TestClient) -> None:
    answer = api.get("/ui/jobs?status=failed&queue=billing", follow_redirects=False)
    assert answer.status_code == 303
    login = api.get(answer.headers["location"])  # the form carries where to go back to
    found = re.search(r'name="next" value="([^"]+)"', login.text)
    assert found and found.group(1) == "/ui/jobs?status=failed&amp;queue=billing"

    back = api.post(
        "/ui/login",
        data={
            "username": "vera",
            "password": "viewer-pw",
            "next": "/ui/jobs?status=failed&queue=billing",
        },
        follow_redirects=False,
    )
    assert back.status_code == 303
    assert back.headers["location"] == "/ui/jobs?status=failed&queue=billing"
    cookie = back.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    page = api.get("/ui/jobs")
    assert "script-src" not in page.headers["content-security-policy"]  # 'self' by default
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'style="' not in page.text and "<script>" not in page.text  # nothing inline


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/jobs", "/\\evil"])
def test_login_never_sends_anyone_off_the_dashboard(api: TestClient, target: str) -> None:
    answer = api.post(
        "/ui/login",
        data={"username": "vera", "password": "viewer-pw", "next": target},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/ui/"


def test_forms_posted_from_another_site_are_refused(api: TestClient) -> None:
    answer = api.post(
        "/ui/login",
        data={"username": "vera", "password": "viewer-pw"},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert answer.status_code == 403 and "botyard_session" not in answer.headers.get(
        "set-cookie", ""
    )


def test_the_session_cookie_is_secure_behind_a_tls_proxy(api: TestClient) -> None:
    answer = api.post(
        "/ui/login",
        data={"username": "vera", "password": "viewer-pw"},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert "Secure" in answer.headers["set-cookie"]


def test_a_wrong_password_is_refused_and_audited(api: TestClient) -> None:
    answer = api.post("/ui/login", data={"username": "vera", "password": "nope"})
    assert answer.status_code == 401 and "Incorrect username or password." in answer.text
    assert "botyard_session" not in answer.headers.get("set-cookie", "")
    audit = api.app.state.runtime.store.audit  # type: ignore[attr-defined]
    assert [e.actor for e in audit.recent(action="login_failed")] == ["vera"]


def test_a_forged_session_cookie_gets_the_login_page(api: TestClient) -> None:
    api.cookies.set("botyard_session", "not.a.jwt", path="/ui")
    answer = api.get("/ui/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


def test_actions_need_the_forms_csrf_token(api: TestClient) -> None:
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    job, _ = store.submit(NewJob(automation="accept.quick", payload={"n": 1}, queue="q"))
    csrf = log_in(api, "olivia", "operator-pw")

    for given in ("", "0" * 40):
        refused = api.post(f"/ui/jobs/{job.id}/cancel", data={"csrf": given})
        assert refused.status_code in (403, 422)
    assert store.get_job(job.id).status.value == "queued"

    done = api.post(f"/ui/jobs/{job.id}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert store.get_job(job.id).status.value == "cancelled"
    audit = store.audit.recent(action="job_cancelled")
    assert [(e.actor, e.target) for e in audit] == [("olivia", f"job:{job.id}")]


def test_a_viewer_gets_no_buttons_and_no_actions(api: TestClient) -> None:
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    job, _ = store.submit(NewJob(automation="accept.quick", payload={"n": 1}, queue="q"))
    csrf = log_in(api, "vera", "viewer-pw")

    page = api.get(f"/ui/jobs/{job.id}").text
    assert "/cancel" not in page and "Submit a job" not in api.get("/ui/jobs").text
    refused = api.post(f"/ui/jobs/{job.id}/cancel", data={"csrf": csrf})
    assert refused.status_code == 403 and "may not job:cancel" in refused.text
    assert (
        api.post("/ui/jobs", data={"csrf": csrf, "automation": "accept.quick"}).status_code == 403
    )
    assert api.get("/ui/audit").status_code == 403
    assert api.get("/ui/browsers").status_code == 403  # as GET /browsers: operators and up
    assert 'href="/ui/browsers"' not in api.get("/ui/jobs").text
    assert store.get_job(job.id).status.value == "queued"


def test_what_jobs_carry_is_shown_escaped(api: TestClient) -> None:
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    job, _ = store.submit(
        NewJob(automation="accept.quick", payload={"n": "<script>alert(1)</script>"}, queue="q")
    )
    log_in(api, "vera", "viewer-pw")
    page = api.get(f"/ui/jobs/{job.id}").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_a_submit_with_a_bad_payload_changes_nothing_and_says_why(api: TestClient) -> None:
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    csrf = log_in(api, "olivia", "operator-pw")
    for payload, message in [
        ("{not json", "The payload is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"n": "seven"}', "does not fit accept.quick: n:"),
    ]:
        answer = api.post(
            "/ui/jobs", data={"csrf": csrf, "automation": "accept.quick", "payload": payload}
        )
        assert answer.status_code == 422 and message in answer.text, payload
    unknown = api.post("/ui/jobs", data={"csrf": csrf, "automation": "no.such", "payload": "{}"})
    assert unknown.status_code == 422
    assert store.list_jobs(JobFilter())[1] == 0


def test_evidence_is_served_only_from_the_evidence_folder(api: TestClient, tmp_path: Path) -> None:
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    job, _ = store.submit(NewJob(automation="accept.quick", payload={"n": 1}, queue="q"))
    inside = tmp_path / "evidence" / str(job.id) / "shot.png"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    outside = tmp_path / "jwt-secret-copy"
    outside.write_text("do not serve")
    with store.engine.begin() as conn:
        for name, path in (("shot.png", inside), ("secret.png", outside)):
            conn.execute(
                evidence.insert().values(
                    job_id=job.id,
                    attempt=0,
                    name=name,
                    path=str(path),
                    content_type="image/png",
                    size=path.stat().st_size,
                    created_at=job.created_at,
                )
            )
    good, bad = (e.id for e in store.evidence(job.id))
    assert api.get(f"/ui/evidence/{good}", follow_redirects=False).status_code == 303  # login
    log_in(api, "vera", "viewer-pw")

    served = api.get(f"/ui/evidence/{good}")
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert api.get(f"/ui/evidence/{bad}").status_code == 404
    assert api.get("/ui/evidence/999999").status_code == 404


def test_search_finds_jobs_by_id_and_by_name(api: TestClient) -> None:
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    first, _ = store.submit(NewJob(automation="accept.quick", payload={"n": 1}, queue="billing"))
    second, _ = store.submit(NewJob(automation="accept.evidence", payload={"text": "x"}))
    log_in(api, "vera", "viewer-pw")

    def found(query: str) -> set[int]:
        table = api.get("/ui/jobs", params={"q": query, "partial": "1"}).text
        return {int(n) for n in re.findall(r'href="/ui/jobs/(\d+)"', table)}

    assert found(str(second.id)) == {second.id}
    assert found("bill") == {first.id}
    assert found("ACCEPT") == {first.id, second.id}
    assert found("accept evid") == {second.id}
    assert found("100%_") == set()
    assert found("9" * 40) == set()
    assert found("²") == set()  # a digit to str.isdigit, not to int()
