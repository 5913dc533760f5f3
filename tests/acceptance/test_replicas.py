"""Two orchestrator processes on one store: each maintenance job runs once per trigger."""

from __future__ import annotations

import os
import signal
import time
from itertools import pairwise

import httpx
import pytest

from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System

FAST = {
    "BOTYARD_POLL_JOB_QUEUE_SECONDS": "0.5",
    "BOTYARD_RECOVER_STALE_JOBS_SECONDS": "0.5",
    "BOTYARD_COLLECT_METRICS_SECONDS": "0.5",
    "BOTYARD_POLL_WORKER_JOB_STATUS_SECONDS": "0.5",
    "BOTYARD_LEADER_TTL": "3",
}


def _scheduler(url: str) -> dict[str, object]:
    answer: dict[str, object] = httpx.get(f"{url}/scheduler", timeout=5).json()
    return answer


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_two_orchestrators_share_the_maintenance_work(system: System, store_for: SqlStore) -> None:
    system.env.update(FAST)
    system.env["BOTYARD_REPLICA_ID"] = "replica-1"
    system.server()
    first_url, first = system.url, system.procs[-1]
    system.env["BOTYARD_REPLICA_ID"] = "replica-2"
    system.server()
    second_url = system.url
    time.sleep(3)

    one, two = _scheduler(first_url), _scheduler(second_url)
    assert one["leader"] == two["leader"] == "replica-1"  # the first to start leads
    assert (one["is_leader"], two["is_leader"]) == (True, False)
    for job in (
        "poll_job_queue",
        "recover_stale_jobs",
        "collect_metrics",
        "poll_worker_job_status",
    ):
        runs = store_for.maintenance.runs(job)
        assert runs and {r.replica for r in runs} == {"replica-1"}, job
        gaps = [(b - a).total_seconds() for a, b in pairwise(sorted(r.started_at for r in runs))]
        assert all(gap > 0.1 for gap in gaps), (job, gaps)  # never twice for one trigger

    os.kill(first.pid, signal.SIGKILL)  # the leader dies without giving its lease back
    first.wait()
    killed = time.monotonic()
    while _scheduler(second_url)["leader"] != "replica-2":
        assert time.monotonic() - killed < 3 + 2, "the second replica did not take over"
        time.sleep(0.1)
    time.sleep(1.5)
    assert store_for.maintenance.runs("poll_job_queue")[0].replica == "replica-2"
