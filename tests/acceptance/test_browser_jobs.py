"""Jobs with a browser, run by a real worker in the system Chromium."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import psutil
import pytest

from botyard.browsers.local import OWNER_SWITCH
from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System

# Browsers do not depend on the store: these run on SQLite only (the contract suite covers both).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("store_url", ["sqlite"], indirect=True),
]


def _browsers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(a.startswith(OWNER_SWITCH) for a in proc.info.get("cmdline") or []):
            found.append(proc)
    return found


def test_playwright_and_selenium_jobs_get_a_page_and_keep_screenshots(
    system: System, store_for: SqlStore
) -> None:
    system.server()
    system.worker("browser-worker", "--concurrency", "2")
    playwright_job = system.submit("accept.page", {"name": "Playwright"})
    selenium_job = system.submit("accept.selenium", {"name": "Selenium"})
    for job_id in (playwright_job, selenium_job):
        system.wait_for(lambda j=job_id: system.job(j)["status"] == "succeeded", 90, "the job")
    assert system.job(playwright_job)["result"] == {
        "title": "Botyard",
        "greeting": "Hello Playwright",
    }
    assert system.job(selenium_job)["result"] == {"title": "Botyard", "greeting": "Hello Selenium"}
    for job_id in (playwright_job, selenium_job):
        shots = [e for e in store_for.evidence(job_id) if e.name == "greeting.png"]
        assert len(shots) == 1
        assert Path(shots[0].path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sessions = system.api("GET", "/browsers?all=true").json()
    assert {s["job_id"] for s in sessions} >= {playwright_job, selenium_job}


def test_a_failed_page_keeps_a_screenshot_and_the_html(system: System, store_for: SqlStore) -> None:
    system.env.update(BROWSER_TRACE_ON_FAILURE="true", ACCEPT_PORTAL_PASSWORD="hunter2-portal-pw")
    system.server()
    system.worker("browser-worker")
    job_id = system.submit("accept.page_fails", {"name": "failure"})
    system.wait_for(lambda: system.job(job_id)["status"] == "failed", 90, "the job to fail")
    kept = {e.name: e for e in store_for.evidence(job_id)}
    assert {"failure.png", "failure.html", "trace.zip"} <= set(kept)
    trace = Path(kept["trace.zip"].path).read_bytes()
    assert trace[:2] == b"PK"  # playwright show-trace
    with zipfile.ZipFile(io.BytesIO(trace)) as archive:  # typed into the page, masked in the trace
        texts = [archive.read(name) for name in archive.namelist()]
    assert any(b"***" in text for text in texts)
    assert not any(b"hunter2-portal-pw" in text for text in texts)
    assert kept["failure.png"].step == "look for a missing button"
    assert "Hello failure" in Path(kept["failure.html"].path).read_text()


def test_cancelling_a_job_kills_its_browser(system: System, tmp_path: Path) -> None:
    system.env["BROWSER_WARM"] = "false"  # no warm browser: every Chromium left would be a leak
    system.server()
    system.worker("browser-worker")
    markers = tmp_path / "markers"
    markers.mkdir()
    job_id = system.submit("accept.page_hangs", {"marker_dir": str(markers)})
    system.wait_for(lambda: (markers / f"{job_id}.browser").exists(), 90, "the browser")
    assert _browsers(), "the job's Chromium runs"
    assert system.api("POST", f"/jobs/{job_id}/cancel").status_code == 200
    system.wait_for(lambda: system.job(job_id)["status"] == "cancelled", 30, "the cancel")
    system.wait_for(lambda: not _browsers(), 10, "every Chromium process to be gone")
    time.sleep(0.5)
    assert not _browsers()


def test_a_killed_worker_leaves_no_browser_behind(system: System, tmp_path: Path) -> None:
    """kill -9 of the worker: its job processes die with it (PDEATHSIG); a browser that outlives
    them is found by the next worker's sweeper, killed and counted."""
    system.env["BROWSER_WARM"] = "false"
    system.server()
    worker = system.worker("doomed-worker")
    markers = tmp_path / "markers"
    markers.mkdir()
    job_id = system.submit("accept.page_hangs", {"marker_dir": str(markers)})
    system.wait_for(lambda: (markers / f"{job_id}.browser").exists(), 90, "the browser")
    assert _browsers()
    worker.kill()
    worker.wait()
    time.sleep(2)  # what dies with the worker has died
    outlived = _browsers()
    system.worker("next-worker")  # sweeps at start
    system.wait_for(lambda: not _browsers(), 40, "every Chromium process to be gone")
    if outlived:  # the sweeper killed them: counted
        metrics = system.api("GET", "/metrics?format=prometheus").text
        [leaks] = [
            line for line in metrics.splitlines() if line.startswith("botyard_browser_leaks")
        ]
        assert float(leaks.split()[-1]) >= 1
    system.wait_for(lambda: system.job(job_id)["status"] != "running", 30, "the recovery")
