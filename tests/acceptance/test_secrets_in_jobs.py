"""A secret a job reads never reaches its logs, result, error or text evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System

SECRET = "sk-live-0123456789abcdef"
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # store-independent


def test_a_jobs_secret_is_masked_everywhere_it_writes(system: System, store_for: SqlStore) -> None:
    system.env["ACCEPT_API_KEY"] = SECRET
    system.server()
    system.worker("secret-worker")
    ok = system.submit("accept.leaky", {})
    failed = system.submit("accept.leaky", {"fail": True})
    system.wait_for(lambda: system.job(ok)["status"] == "succeeded", 60, "the job")
    system.wait_for(lambda: system.job(failed)["status"] == "failed", 60, "the failing job")
    for job_id in (ok, failed):
        shown = json.dumps(system.job(job_id)) + json.dumps(
            system.api("GET", f"/jobs/{job_id}/logs").json()
        )
        assert SECRET not in shown and "***" in shown
        for item in store_for.evidence(job_id):
            assert SECRET not in Path(item.path).read_text()
    assert system.job(ok)["result"] == {"echo": "***", "nested": [{"key": "***"}]}
