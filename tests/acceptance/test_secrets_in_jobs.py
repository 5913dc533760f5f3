"""A secret a job reads never reaches its logs, result, error or text evidence."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from botyard.jobs import JobStatus
from botyard.store.records import NewJob
from botyard.store.sql import SqlStore
from tests.acceptance.conftest import AUTOMATIONS, System

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


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("setpriv") is None,
    reason="PR_SET_DUMPABLE is Linux's; setpriv gives a worker of a root test run no capabilities",
)
def test_a_job_cannot_read_its_workers_environment(system: System, store_for: SqlStore) -> None:
    system.env["BOTYARD_WORKER_TOKEN"] = "worker-token-a-job-must-not-read"
    # Without capabilities, as a worker of an ordinary uid runs (root's CAP_SYS_PTRACE would
    # read any process's environment, and its jobs have it too).
    no_caps = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    command = [*no_caps, sys.executable, "-m", "botyard", "worker", "--worker-id", "hidden"]
    system.procs.append(subprocess.Popen([*command, "--automations", AUTOMATIONS], env=system.env))
    job, _ = store_for.submit(NewJob("accept.peek_at_worker", {}, max_attempts=1))
    system.wait_for(
        lambda: store_for.get_job(job.id, detail=False).status is JobStatus.SUCCEEDED, 60, "it"
    )
    # Before: /proc/<worker>/environ was readable, the token (and database URL) in it.
    assert store_for.get_job(job.id).result == {"read": False, "token": False}
