"""The dashboard at /ui in the system Chromium, against a real orchestrator and worker.

Every page the test visits is saved as a PNG under ``build/ui-screenshots/`` (or
``$BOTYARD_UI_SCREENSHOTS``): CI keeps them as artifacts, and the README shows two.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from botyard.browsers.local import find_chromium, switches
from botyard.jobs import JobStatus, Outcome
from botyard.store import NewJob, SqlStore
from botyard.store.records import Completion
from tests.acceptance.conftest import System

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)]

SHOTS = Path(
    os.environ.get(
        "BOTYARD_UI_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
    )
)
ADMIN_PASSWORD = "acceptance-password"  # the system fixture's admin


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=find_chromium(), args=switches())
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def running(system: System) -> System:
    system.env["BOTYARD_COLLECT_METRICS_SECONDS"] = "1"  # points for the charts
    system.server()
    system.worker("ui-worker", "--concurrency", "2")
    added = system.run("users", "add", "vera", "--role", "viewer", "--password", "viewer-pass")
    assert added.returncode == 0, added.stderr
    return system


def _page(browser: Browser) -> Page:
    return browser.new_page(viewport={"width": 1366, "height": 860})


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login"))  # not logged in: the login page
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def _submit(page: Page, url: str, automation: str, payload: str) -> int:
    page.goto(f"{url}/ui/jobs/new")
    page.get_by_label("Automation", exact=True).select_option(automation)
    page.get_by_label("Payload (JSON object)").fill(payload)
    page.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def _failed(store: SqlStore) -> int:
    """A job the automation refused (a business error), in a queue no worker serves."""
    job, _ = store.submit(NewJob(automation="accept.quick", payload={"n": 1}, queue="manual"))
    (claimed,) = store.claim(
        "gone-worker", queues=["manual"], automations=["accept.quick"], limit=1, lease_ttl=30
    )
    error = {"type": "BusinessError", "message": "circuit not found"}
    (status,) = store.finish(
        [Completion(job.id, claimed.attempt, Outcome.BUSINESS_ERROR, 3, True, error=error)]
    )
    assert status is JobStatus.FAILED
    return job.id


def _needs_review(store: SqlStore) -> int:
    """A job whose attempt broke inside a side effect, in a queue no worker serves."""
    job, _ = store.submit(NewJob(automation="accept.quick", payload={"n": 7}, queue="manual"))
    (claimed,) = store.claim(
        "gone-worker", queues=["manual"], automations=["accept.quick"], limit=1, lease_ttl=30
    )
    assert store.mark_side_effect(job.id, claimed.attempt, "submit the order")
    error = {"type": "ConnectionError", "message": "the portal stopped answering"}
    (status,) = store.finish(
        [
            Completion(
                job.id,
                claimed.attempt,
                Outcome.ERROR,
                3,
                False,
                side_effect="submit the order",
                error=error,
            )
        ]
    )
    assert status is JobStatus.NEEDS_REVIEW
    return job.id


def test_an_operator_runs_watches_retries_and_resolves_jobs(
    running: System, store_for: SqlStore, browser: Browser
) -> None:
    url = running.url
    page = _page(browser)
    problems: list[str] = []  # script errors, refused resources, CSP violations
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    _log_in(page, url, "admin", ADMIN_PASSWORD)

    # Submit a browser job from the UI and watch it finish without reloading the page.
    job_id = _submit(page, url, "accept.page", '{"name": "Ada"}')
    expect(page.locator(".summary .badge")).to_have_text("succeeded", timeout=60_000)
    expect(page.get_by_role("heading", name="Screenshots")).to_be_visible()
    _shot(page, "job")

    # Its screenshot opens in the viewer.
    page.locator("a.shot").first.click()
    viewer = page.locator("dialog#viewer")
    expect(viewer).to_be_visible()
    loaded = viewer.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded
    _shot(page, "screenshot-viewer")
    page.get_by_role("button", name="Close the screenshot").click()
    expect(viewer).to_be_hidden()

    # A failed job, retried from its page.
    failed_id = _submit(page, url, "accept.page_fails", '{"name": "Bob"}')
    expect(page.locator(".summary .badge")).to_have_text("failed", timeout=60_000)
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_have_text("Job retried.")
    expect(page.get_by_role("heading", name=re.compile("Attempt 2"))).to_be_visible(timeout=60_000)
    assert store_for.get_job(failed_id).attempt == 2

    # A job in review, resolved with a note.
    review_id = _needs_review(store_for)
    page.goto(f"{url}/ui/jobs/{review_id}")
    expect(page.locator(".summary .badge")).to_have_text("needs review")
    _shot(page, "job-needs-review")
    page.get_by_label("It was done: succeeded").check()
    page.get_by_label("Note (what you checked)").fill("order 7 is on the portal")
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_role("status")).to_have_text("Job resolved.")
    expect(page.locator(".summary .badge")).to_have_text("succeeded")
    resolved = store_for.get_job(review_id)
    assert resolved.status is JobStatus.SUCCEEDED
    assert resolved.resolution is not None and resolved.resolution["by"] == "admin"

    # The lists and the other pages, each kept as a screenshot.
    page.goto(f"{url}/ui/jobs")
    expect(page.get_by_role("link", name=f"#{job_id}", exact=True)).to_be_visible()
    page.get_by_label("Search").fill("page_fails")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name=f"#{failed_id}", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=f"#{job_id}", exact=True)).to_have_count(0)
    page.goto(f"{url}/ui/jobs")
    _shot(page, "jobs")
    running.wait_for(lambda: len(store_for.metrics.history()) >= 3, 30, "metrics history")
    for name, path, heading in [
        ("overview", "/ui/", "Overview"),
        ("workers", "/ui/workers", "Workers"),
        ("browsers", "/ui/browsers", "Browser sessions"),
        ("totp", "/ui/totp", "TOTP codes"),
        ("scheduler", "/ui/scheduler", "Scheduler"),
        ("audit", "/ui/audit", "Audit log"),
        ("submit", "/ui/jobs/new", "Submit a job"),
    ]:
        page.goto(f"{url}{path}")
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        _shot(page, name)
    page.goto(f"{url}/ui/")
    expect(page.get_by_role("img", name="Throughput (jobs/min)")).to_be_visible()
    expect(page.get_by_role("rowheader", name="ui-worker")).to_be_visible()
    page.goto(f"{url}/ui/audit?action=job_retried")
    expect(page.get_by_role("link", name=f"job:{failed_id}")).to_be_visible()
    assert problems == []


def test_a_viewer_sees_no_actions_and_is_refused_them(
    running: System, store_for: SqlStore, browser: Browser
) -> None:
    url = running.url
    failed = _failed(store_for)  # a job an operator could retry
    review_id = _needs_review(store_for)
    page = _page(browser)
    _log_in(page, url, "vera", "viewer-pass")
    _shot(page, "viewer-overview")

    for job_id in (failed, review_id):
        page.goto(f"{url}/ui/jobs/{job_id}")
        expect(page.get_by_role("heading", name="Payload")).to_be_visible()
        for action in ("Cancel", "Retry", "Resolve"):
            expect(page.get_by_role("button", name=action)).to_have_count(0)
    page.goto(f"{url}/ui/jobs")
    expect(page.get_by_role("link", name="Submit a job")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)

    # The dashboard refuses the actions even when the form is forged with a valid CSRF token.
    csrf = page.locator("form.who input[name=csrf]").get_attribute("value")
    refused = page.request.post(f"{url}/ui/jobs/{failed}/retry", form={"csrf": csrf or ""})
    assert refused.status == 403
    assert page.request.get(f"{url}/ui/audit").status == 403
    # And so does the API, with the viewer's own token.
    token = httpx.post(f"{url}/token", data={"username": "vera", "password": "viewer-pass"}).json()[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    for path in (f"/jobs/{failed}/retry", f"/jobs/{review_id}/cancel"):
        assert httpx.post(f"{url}{path}", headers=headers).status_code == 403
    answer = httpx.post(
        f"{url}/jobs/{review_id}/resolve",
        json={"status": "failed", "note": "no"},
        headers=headers,
    )
    assert answer.status_code == 403
    assert store_for.get_job(failed).status is JobStatus.FAILED
    assert store_for.get_job(review_id).status is JobStatus.NEEDS_REVIEW


def test_a_forged_or_foreign_login_gets_nowhere(running: System, browser: Browser) -> None:
    page = _page(browser)
    page.goto(f"{running.url}/ui/login?next=https://elsewhere.example/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    _shot(page, "login")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{running.url}/ui/")  # never sent to another site
    cookie = next(c for c in page.context.cookies() if c["name"] == "botyard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
