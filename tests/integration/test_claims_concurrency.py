"""Many claimers, one store: every job is claimed exactly once."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from botyard.jobs import JobStatus, Outcome
from botyard.store import Completion, NewJob, SqlStore, open_store
from botyard.store.tables import attempts, jobs

JOBS = 2000
CLAIMERS = 8
BATCH = 10
AUTOMATION = "acme.invoice"


def _claimer(url: str, name: str, claimed: list[int], errors: list[BaseException]) -> None:
    store = open_store(url, migrate=False, pool_size=2)
    try:
        while True:
            batch = store.claim(
                name, queues=["default"], automations=[AUTOMATION], limit=BATCH, lease_ttl=60
            )
            if not batch:
                return
            claimed.extend(job.id for job in batch)
            statuses = store.finish(
                [
                    Completion(
                        job_id=job.id,
                        attempt=job.attempt,
                        outcome=Outcome.SUCCEEDED,
                        max_attempts=job.max_attempts,
                        idempotent=job.idempotent,
                        attempt_base=job.attempt_base,
                        result={"by": name},
                    )
                    for job in batch
                ]
            )
            if statuses != [JobStatus.SUCCEEDED] * len(batch):
                raise AssertionError(f"{name} could not finish its own jobs: {statuses}")
    except BaseException as exc:
        errors.append(exc)
    finally:
        store.close()


def test_concurrent_claimers_take_every_job_exactly_once(store_url: str, store: SqlStore) -> None:
    submitted = [store.submit(NewJob(AUTOMATION, {"n": n}))[0].id for n in range(JOBS)]
    per_claimer: list[list[int]] = [[] for _ in range(CLAIMERS)]
    errors: list[BaseException] = []

    threads = [
        threading.Thread(target=_claimer, args=(store_url, f"claimer-{i}", per_claimer[i], errors))
        for i in range(CLAIMERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)

    assert not any(t.is_alive() for t in threads)
    assert errors == []
    claimed = Counter(job_id for ids in per_claimer for job_id in ids)
    assert sorted(claimed) == sorted(submitted)
    assert set(claimed.values()) == {1}
    assert sum(1 for ids in per_claimer if ids) > 1  # the claimers really did compete
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(attempts)).scalar_one() == JOBS
        attempt_range = conn.execute(select(func.min(jobs.c.attempt), func.max(jobs.c.attempt)))
        assert tuple(attempt_range.one()) == (1, 1)
        by_status = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
        assert {status: n for status, n in by_status} == {JobStatus.SUCCEEDED.value: JOBS}
    assert store.counts_by_status()[JobStatus.SUCCEEDED] == JOBS
