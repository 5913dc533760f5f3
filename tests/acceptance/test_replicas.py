"""Two orchestrator processes on one store: each maintenance job runs once per trigger."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from botyard.jobs import JobStatus
from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System
from tests.conftest import redis_url

FAST = {
    "BOTYARD_POLL_JOB_QUEUE_SECONDS": "0.5",
    "BOTYARD_RECOVER_STALE_JOBS_SECONDS": "0.5",
    "BOTYARD_COLLECT_METRICS_SECONDS": "0.5",
    "BOTYARD_POLL_WORKER_JOB_STATUS_SECONDS": "0.5",
    "BOTYARD_LEADER_TTL": "3",
}
FAST_JOBS = ("poll_job_queue", "recover_stale_jobs", "collect_metrics", "poll_worker_job_status")


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
    for job in FAST_JOBS:
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


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_two_orchestrators_and_two_workers_on_postgres_and_redis_run_each_job_once(
    system: System, store_for: SqlStore, redis_client: object, redis_prefix: str, tmp_path: Path
) -> None:
    total = 2000
    system.env.update(FAST)
    system.env.update(
        {
            "REDIS_URL": redis_url(),
            "BOTYARD_REDIS_PREFIX": redis_prefix,
            "BOTYARD_REDIS_RECONCILE_SECONDS": "0.5",
            # Neither the workers' poll nor the leader's wake-ups on the bus: jobs arrive
            # through Redis (the bus only carries a wake-up when a claim came up short).
            "BOTYARD_WORKER_POLL_INTERVAL": "3600",
            "BOTYARD_POLL_JOB_QUEUE_SECONDS": "3600",
        }
    )
    urls = []
    for replica in ("replica-1", "replica-2"):
        system.env["BOTYARD_REPLICA_ID"] = replica
        system.server()
        urls.append((system.url, system.token))
    for worker_id in ("w1", "w2"):
        system.worker(worker_id, "--concurrency", "4", "--redis-url", redis_url())
    system.wait_for(lambda: len(store_for.workers.all()) == 2, 30, "both workers")
    tally = tmp_path / "tally"

    def submit_share(share: int) -> list[int]:
        url, token = urls[share % 2]  # half the jobs through each orchestrator
        ids = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(share, total, 4):
                answer = http.post(
                    "/jobs", json={"automation": "accept.tally", "payload": {"path": str(tally)}}
                )
                assert answer.status_code == 201, answer.text
                ids.append(answer.json()["id"])
        return ids

    with ThreadPoolExecutor(4) as pool:
        ids = [i for share in pool.map(submit_share, range(4)) for i in share]
    assert len(set(ids)) == total

    def all_done() -> bool:
        counts = store_for.counts_by_status()
        return counts[JobStatus.SUCCEEDED] + counts[JobStatus.FAILED] == total

    system.wait_for(all_done, 180, f"{total} jobs")

    assert store_for.counts_by_status()[JobStatus.SUCCEEDED] == total
    ran = Counter(int(line.split()[0]) for line in tally.read_text().splitlines())
    assert ran == Counter(ids)  # every job ran, and none twice
    jobs = [store_for.get_job(i, detail=False) for i in ids]
    assert {job.attempt for job in jobs} == {1}
    assert {job.worker_id for job in jobs} == {"w1", "w2"}  # both workers took their share

    # Everything Redis carried was taken and acknowledged.
    def drained() -> bool:
        redis = httpx.get(f"{urls[1][0]}/status", timeout=10).json()["redis"]
        assert redis["dispatch"] is True
        return bool(redis["taken"] == 0 and set(redis["entries"].values()) <= {0})

    system.wait_for(drained, 10, "Redis lists emptied")
    # Each maintenance job ran once per trigger, on the leader only; the reconciler among them.
    for job in (
        "recover_stale_jobs",
        "collect_metrics",
        "poll_worker_job_status",
        "reconcile_redis",
    ):
        runs = store_for.maintenance.runs(job, limit=10_000)
        assert runs and len({r.replica for r in runs}) == 1, job
        starts = sorted(r.started_at for r in runs)
        assert all((b - a).total_seconds() > 0.1 for a, b in pairwise(starts)), job
