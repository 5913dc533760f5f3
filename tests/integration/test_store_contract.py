"""The store contract: one suite, run against every backend (SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from botyard.errors import InvalidTransition, JobNotFound
from botyard.jobs import JobStatus, Outcome
from botyard.store import ClaimedJob, Completion, JobFilter, JobRecord, NewJob, SqlStore
from botyard.store.records import Activity
from botyard.store.tables import attempts, jobs, steps

WORKER = "worker-a"
AUTOMATION = "acme.invoice"


def submit(store: SqlStore, automation: str = AUTOMATION, **kwargs: Any) -> JobRecord:
    payload = kwargs.pop("payload", {})
    job, created = store.submit(NewJob(automation=automation, payload=payload, **kwargs))
    assert created
    return job


def claim(
    store: SqlStore,
    *,
    limit: int = 10,
    queues: tuple[str, ...] = ("default",),
    automations: tuple[str, ...] = (AUTOMATION,),
    lease_ttl: float = 30.0,
    worker_id: str = WORKER,
) -> list[ClaimedJob]:
    return store.claim(
        worker_id, queues=queues, automations=automations, limit=limit, lease_ttl=lease_ttl
    )


def claim_one(store: SqlStore, **kwargs: Any) -> ClaimedJob:
    claimed = claim(store, limit=1, **kwargs)
    assert len(claimed) == 1
    return claimed[0]


def completion(
    job: ClaimedJob, outcome: Outcome, *, side_effect: str | None = None, **kwargs: Any
) -> Completion:
    return Completion(
        job_id=job.id,
        attempt=job.attempt,
        outcome=outcome,
        max_attempts=job.max_attempts,
        idempotent=job.idempotent,
        attempt_base=job.attempt_base,
        side_effect=side_effect,
        **kwargs,
    )


def log_item(job_id: int, attempt: int, message: str, level: str = "INFO") -> Activity:
    return Activity(job_id, attempt, datetime.now(UTC), "log", {"level": level, "message": message})


def count(store: SqlStore, table: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def expire_leases(seconds: float = 0.3) -> None:
    """Sleep past a ``lease_ttl=0.2`` lease."""
    time.sleep(seconds)


# -- submission -----------------------------------------------------------------


def test_submit_creates_a_queued_job(store: SqlStore) -> None:
    job, created = store.submit(
        NewJob(automation=AUTOMATION, payload={"n": 1}, priority=3, created_by="alice")
    )

    assert created is True
    assert job.id > 0
    assert job.status is JobStatus.QUEUED
    assert job.provider == "acme"
    assert job.payload == {"n": 1}
    assert job.priority == 3
    assert job.attempt == 0
    assert job.created_by == "alice"
    assert job.not_before.tzinfo is not None
    assert store.get_job(job.id).status is JobStatus.QUEUED


def test_idempotency_key_returns_the_first_job(store: SqlStore) -> None:
    first, created = store.submit(NewJob(AUTOMATION, {"n": 1}, idempotency_key="k-1"))
    again, created_again = store.submit(NewJob(AUTOMATION, {"n": 2}, idempotency_key="k-1"))

    assert created is True
    assert created_again is False
    assert again.id == first.id
    assert again.payload == {"n": 1}
    assert count(store, jobs) == 1


def test_jobs_without_idempotency_key_are_all_created(store: SqlStore) -> None:
    ids = {submit(store).id for _ in range(3)}

    assert len(ids) == 3


def test_concurrent_submissions_with_one_key_create_one_job(store: SqlStore) -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def race(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            job, created = store.submit(NewJob(AUTOMATION, {"n": n}, idempotency_key="race"))
            with lock:
                results.append((job.id, created))
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert len(results) == threads_count
    assert sum(created for _, created in results) == 1
    assert len({job_id for job_id, _ in results}) == 1
    assert count(store, jobs) == 1


# -- claiming -------------------------------------------------------------------


def test_claim_takes_higher_priority_first_then_oldest(store: SqlStore) -> None:
    low_1 = submit(store, priority=0)
    high_1 = submit(store, priority=5)
    low_2 = submit(store, priority=0)
    high_2 = submit(store, priority=5)
    top = submit(store, priority=10)

    batch = claim(store, limit=10)

    assert [j.id for j in batch] == [top.id, high_1.id, high_2.id, low_1.id, low_2.id]


def test_claim_one_at_a_time_follows_the_same_order(store: SqlStore) -> None:
    low = submit(store, priority=-1)
    first = submit(store, priority=1)
    second = submit(store, priority=1)

    order = [claim_one(store).id for _ in range(3)]

    assert order == [first.id, second.id, low.id]
    assert claim(store) == []


def test_claim_moves_the_job_to_running_and_opens_an_attempt(store: SqlStore) -> None:
    job = submit(store, payload={"x": 1}, max_attempts=4, timeout=12.5, idempotent=True)

    claimed = claim_one(store, lease_ttl=60)

    assert claimed.id == job.id
    assert claimed.attempt == 1
    assert claimed.attempt_base == 0
    assert claimed.payload == {"x": 1}
    assert claimed.max_attempts == 4
    assert claimed.timeout == 12.5
    assert claimed.idempotent is True
    stored = store.get_job(job.id)
    assert stored.status is JobStatus.RUNNING
    assert stored.worker_id == WORKER
    assert stored.lease_expires_at is not None
    assert stored.lease_expires_at > datetime.now(UTC) + timedelta(seconds=50)
    assert [(a.number, a.worker_id, a.outcome) for a in stored.attempts] == [(1, WORKER, None)]


def test_a_delayed_job_is_not_claimed_until_due(store: SqlStore) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    job = submit(store, not_before=due)
    now_job = submit(store)

    assert [j.id for j in claim(store)] == [now_job.id]
    assert claim(store) == []
    assert store.next_not_before(["default"]) == due

    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.05)

    assert [j.id for j in claim(store)] == [job.id]


def test_claim_respects_queues_and_automations(store: SqlStore) -> None:
    wanted = submit(store, queue="fast")
    submit(store, queue="slow")
    submit(store, "other.thing", queue="fast")

    claimed = claim(store, queues=("fast",), automations=(AUTOMATION,))

    assert [j.id for j in claimed] == [wanted.id]
    assert claim(store, queues=("fast",), automations=(AUTOMATION,)) == []
    assert claim(store, queues=(), automations=(AUTOMATION, "other.thing")) == []
    assert claim(store, queues=("fast", "slow"), automations=()) == []
    rest = claim(store, queues=("fast", "slow"), automations=(AUTOMATION, "other.thing"))
    assert len(rest) == 2


def test_claim_takes_at_most_limit_jobs(store: SqlStore) -> None:
    for _ in range(5):
        submit(store)

    sizes = [len(claim(store, limit=2)) for _ in range(4)]

    assert sizes == [2, 2, 1, 0]
    assert claim(store, limit=0) == []
    assert count(store, attempts) == 5


# -- finishing ------------------------------------------------------------------


def test_success_stores_the_result(store: SqlStore) -> None:
    submit(store)
    job = claim_one(store)

    statuses = store.finish([completion(job, Outcome.SUCCEEDED, result={"total": 42})])

    assert statuses == [JobStatus.SUCCEEDED]
    stored = store.get_job(job.id)
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.result == {"total": 42}
    assert stored.finished_at is not None
    assert stored.lease_expires_at is None
    assert stored.attempts[0].outcome == Outcome.SUCCEEDED.value
    assert stored.attempts[0].finished_at is not None


def test_an_error_with_attempts_left_is_queued_with_backoff(store: SqlStore) -> None:
    submit(store, max_attempts=3)
    job = claim_one(store)
    before = datetime.now(UTC)

    error = {"type": "RuntimeError", "message": "boom"}
    statuses = store.finish([completion(job, Outcome.ERROR, error=error)])

    assert statuses == [JobStatus.QUEUED]
    stored = store.get_job(job.id)
    assert stored.status is JobStatus.QUEUED
    assert stored.not_before > before
    assert stored.worker_id is None
    assert stored.error == error
    assert stored.finished_at is None
    assert stored.attempts[0].outcome == Outcome.ERROR.value
    assert claim(store) == []  # not before the backoff is over


def test_an_error_at_max_attempts_fails_the_job(store: SqlStore) -> None:
    submit(store, max_attempts=1)
    job = claim_one(store)

    statuses = store.finish([completion(job, Outcome.ERROR, error={"type": "E"})])

    assert statuses == [JobStatus.FAILED]
    assert store.get_job(job.id).status is JobStatus.FAILED


def test_an_error_on_the_last_retry_fails_the_job(store: SqlStore) -> None:
    submit(store, max_attempts=2)
    first = claim_one(store)
    assert store.finish([completion(first, Outcome.ERROR)]) == [JobStatus.QUEUED]
    with store.engine.begin() as conn:  # skip the backoff
        conn.execute(jobs.update().values(not_before=datetime.now(UTC)))
    second = claim_one(store)

    assert second.attempt == 2
    assert store.finish([completion(second, Outcome.ERROR)]) == [JobStatus.FAILED]


def test_a_business_error_fails_without_retry(store: SqlStore) -> None:
    submit(store, max_attempts=5)
    job = claim_one(store)

    statuses = store.finish([completion(job, Outcome.BUSINESS_ERROR, error={"type": "No"})])

    assert statuses == [JobStatus.FAILED]
    assert store.get_job(job.id).status is JobStatus.FAILED


def test_an_error_after_a_side_effect_needs_review(store: SqlStore) -> None:
    submit(store, max_attempts=5, idempotent=False)
    job = claim_one(store)
    assert store.mark_side_effect(job.id, job.attempt, "pay") is True

    statuses = store.finish([completion(job, Outcome.ERROR, side_effect="pay")])

    assert statuses == [JobStatus.NEEDS_REVIEW]
    stored = store.get_job(job.id)
    assert stored.status is JobStatus.NEEDS_REVIEW
    assert stored.side_effect == "pay"
    assert stored.attempts[0].side_effect == "pay"
    assert [(s.name, s.kind, s.status) for s in stored.steps] == [("pay", "side_effect", "failed")]


def test_an_idempotent_job_is_retried_after_a_side_effect(store: SqlStore) -> None:
    submit(store, max_attempts=5, idempotent=True)
    job = claim_one(store)
    assert store.mark_side_effect(job.id, job.attempt, "pay") is True

    statuses = store.finish([completion(job, Outcome.ERROR, side_effect="pay")])

    assert statuses == [JobStatus.QUEUED]


def test_finish_takes_a_batch(store: SqlStore) -> None:
    for _ in range(3):
        submit(store, max_attempts=1)
    a, b, c = claim(store)

    statuses = store.finish(
        [
            completion(a, Outcome.SUCCEEDED),
            completion(b, Outcome.BUSINESS_ERROR),
            completion(c, Outcome.SUCCEEDED),
        ]
    )

    assert statuses == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SUCCEEDED]


def test_a_released_job_is_queued_again(store: SqlStore) -> None:
    submit(store, max_attempts=1)
    job = claim_one(store)

    assert store.finish([completion(job, Outcome.RELEASED)]) == [JobStatus.QUEUED]
    again = claim_one(store)
    assert again.id == job.id
    assert again.attempt == 2


def test_a_release_spends_no_attempt(store: SqlStore) -> None:
    submit(store, max_attempts=2)
    first = claim_one(store)
    assert store.finish([completion(first, Outcome.RELEASED)]) == [JobStatus.QUEUED]
    second = claim_one(store)
    # Two real attempts are still left: the first error is retried, the second fails the job.
    assert store.finish([completion(second, Outcome.ERROR)]) == [JobStatus.QUEUED]
    with store.engine.begin() as conn:
        conn.execute(jobs.update().values(not_before=datetime.now(UTC)))
    third = claim_one(store)
    assert third.attempt == 3
    assert store.finish([completion(third, Outcome.ERROR)]) == [JobStatus.FAILED]


def test_a_batch_mixing_kept_and_fenced_out_attempts(store: SqlStore) -> None:
    for _ in range(3):
        submit(store)
    a, b, c = claim(store, limit=3)
    store.cancel(b.id)
    statuses = store.finish(
        [
            completion(a, Outcome.SUCCEEDED, result={"a": 1}),
            completion(b, Outcome.SUCCEEDED, result={"b": 1}),
            completion(c, Outcome.ERROR, error={"type": "X", "message": "boom"}),
        ]
    )
    assert statuses == [JobStatus.SUCCEEDED, None, JobStatus.QUEUED]
    assert store.get_job(a.id).result == {"a": 1} and store.get_job(a.id).worker_id == WORKER
    assert store.get_job(b.id).status is JobStatus.CANCELLED and store.get_job(b.id).result is None
    requeued = store.get_job(c.id)
    assert requeued.worker_id is None and requeued.finished_at is None
    assert requeued.not_before > datetime.now(UTC) and requeued.error == {
        "type": "X",
        "message": "boom",
    }
    assert [x.outcome for x in store.get_job(b.id).attempts] == ["cancelled"]


# -- fencing --------------------------------------------------------------------


def test_a_cancelled_attempt_can_change_nothing(store: SqlStore) -> None:
    submit(store)
    job = claim_one(store)

    cancelled = store.cancel(job.id)

    assert cancelled.status is JobStatus.CANCELLED
    assert store.finish([completion(job, Outcome.SUCCEEDED, result=1)]) == [None]
    assert store.mark_side_effect(job.id, job.attempt, "pay") is False
    assert store.record_activity([log_item(job.id, job.attempt, "late")]) == 1
    assert store.renew_leases(WORKER, [(job.id, job.attempt)], 30) == set()
    stored = store.get_job(job.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.result is None
    assert stored.side_effect is None
    assert stored.lease_expires_at is None
    assert stored.steps == []
    assert store.logs(job.id) == []
    assert stored.attempts[0].outcome == Outcome.CANCELLED.value


def test_renew_leases_extends_only_what_the_worker_holds(store: SqlStore) -> None:
    submit(store)
    submit(store)
    mine = claim_one(store, lease_ttl=1)
    theirs = claim_one(store, worker_id="worker-b", lease_ttl=1)

    kept = store.renew_leases(
        WORKER, [(mine.id, mine.attempt), (theirs.id, theirs.attempt), (mine.id, 99)], 60
    )

    assert kept == {(mine.id, mine.attempt)}
    lease = store.get_job(mine.id).lease_expires_at
    assert lease is not None
    assert lease > datetime.now(UTC) + timedelta(seconds=50)
    assert store.renew_leases(WORKER, [], 60) == set()


def test_a_late_finish_after_lease_recovery_is_refused(store: SqlStore) -> None:
    submit(store, max_attempts=3)
    old = claim_one(store, lease_ttl=0.2)
    expire_leases()

    assert store.recover_expired() == [(old.id, JobStatus.QUEUED)]
    assert store.finish([completion(old, Outcome.SUCCEEDED)]) == [None]

    new = claim_one(store)
    assert new.attempt == 2
    assert store.finish([completion(old, Outcome.SUCCEEDED)]) == [None]
    assert store.mark_side_effect(old.id, old.attempt, "pay") is False
    assert store.record_activity([log_item(old.id, old.attempt, "late")]) == 1
    assert store.finish([completion(new, Outcome.SUCCEEDED, result="ok")]) == [JobStatus.SUCCEEDED]
    stored = store.get_job(old.id)
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.result == "ok"
    assert stored.side_effect is None
    assert [(a.number, a.outcome) for a in stored.attempts] == [
        (1, Outcome.LEASE_EXPIRED.value),
        (2, Outcome.SUCCEEDED.value),
    ]


def test_recover_expired_leaves_live_leases_alone(store: SqlStore) -> None:
    submit(store)
    job = claim_one(store, lease_ttl=30)

    assert store.recover_expired() == []
    assert store.get_job(job.id).status is JobStatus.RUNNING


def test_recover_expired_sends_a_started_side_effect_to_review(store: SqlStore) -> None:
    risky = submit(store, max_attempts=3)
    safe = submit(store, max_attempts=3)
    safe_effect = submit(store, max_attempts=3, idempotent=True)
    claimed = {j.id: j for j in claim(store, lease_ttl=0.2)}
    assert store.mark_side_effect(risky.id, claimed[risky.id].attempt, "pay")
    assert store.mark_side_effect(safe_effect.id, claimed[safe_effect.id].attempt, "pay")
    expire_leases()

    recovered = dict(store.recover_expired())

    assert recovered == {
        risky.id: JobStatus.NEEDS_REVIEW,
        safe.id: JobStatus.QUEUED,
        safe_effect.id: JobStatus.QUEUED,
    }
    assert store.get_job(risky.id).status is JobStatus.NEEDS_REVIEW
    assert store.get_job(safe.id).status is JobStatus.QUEUED
    assert store.get_job(safe.id).error is not None
    assert store.get_job(risky.id).attempts[0].outcome == Outcome.LEASE_EXPIRED.value


def test_recover_expired_fails_a_job_out_of_attempts(store: SqlStore) -> None:
    job = submit(store, max_attempts=1)
    claim_one(store, lease_ttl=0.2)
    expire_leases()

    assert store.recover_expired() == [(job.id, JobStatus.FAILED)]


def test_release_orphans_recovers_a_restarted_workers_jobs(store: SqlStore) -> None:
    mine = submit(store)
    theirs = submit(store)
    claim_one(store, lease_ttl=60)
    claim_one(store, worker_id="worker-b", lease_ttl=60)

    assert store.release_orphans(WORKER) == [(mine.id, JobStatus.QUEUED)]
    assert store.get_job(mine.id).status is JobStatus.QUEUED
    assert store.get_job(theirs.id).status is JobStatus.RUNNING


# -- a person's actions ---------------------------------------------------------


def test_retry_of_a_failed_job_gives_a_fresh_budget(store: SqlStore) -> None:
    submit(store, max_attempts=2)
    first = claim_one(store)
    assert store.finish([completion(first, Outcome.BUSINESS_ERROR)]) == [JobStatus.FAILED]

    retried = store.retry(first.id)

    assert retried.status is JobStatus.QUEUED
    assert retried.attempt_base == 1
    assert retried.finished_at is None
    second = claim_one(store)
    assert (second.attempt, second.attempt_base) == (2, 1)
    # Attempt 2 is the first of the new budget of 2: an error is retried again.
    assert store.finish([completion(second, Outcome.ERROR)]) == [JobStatus.QUEUED]
    with store.engine.begin() as conn:
        conn.execute(jobs.update().values(not_before=datetime.now(UTC)))
    third = claim_one(store)
    assert (third.attempt, third.attempt_base) == (3, 1)
    assert store.finish([completion(third, Outcome.ERROR)]) == [JobStatus.FAILED]


def test_retry_of_a_job_in_review_clears_its_side_effect(store: SqlStore) -> None:
    submit(store, max_attempts=1)
    job = claim_one(store)
    store.mark_side_effect(job.id, job.attempt, "pay")
    assert store.finish([completion(job, Outcome.CRASHED, side_effect="pay")]) == [
        JobStatus.NEEDS_REVIEW
    ]

    retried = store.retry(job.id)

    assert retried.status is JobStatus.QUEUED
    assert retried.side_effect is None
    assert retried.attempt_base == 1
    again = claim_one(store)
    assert store.finish([completion(again, Outcome.SUCCEEDED)]) == [JobStatus.SUCCEEDED]


@pytest.mark.parametrize("succeeded", [True, False])
def test_resolve_closes_a_job_in_review(store: SqlStore, succeeded: bool) -> None:
    submit(store)
    job = claim_one(store)
    store.mark_side_effect(job.id, job.attempt, "pay")
    store.finish([completion(job, Outcome.ERROR, side_effect="pay")])

    resolved = store.resolve(job.id, succeeded=succeeded, note="paid by hand", actor="bob")

    expected = JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED
    assert resolved.status is expected
    assert resolved.resolution is not None
    assert resolved.resolution["note"] == "paid by hand"
    assert resolved.resolution["by"] == "bob"
    assert resolved.resolution["status"] == expected.value
    assert resolved.finished_at is not None
    assert store.get_job(job.id).status is expected


def test_resolve_refuses_a_job_not_in_review(store: SqlStore) -> None:
    job = submit(store)

    with pytest.raises(InvalidTransition):
        store.resolve(job.id, succeeded=True, note="", actor=None)


def test_cancel_of_a_queued_job(store: SqlStore) -> None:
    job = submit(store)

    assert store.cancel(job.id).status is JobStatus.CANCELLED
    assert claim(store) == []
    assert store.get_job(job.id).attempts == []


def test_cancel_of_a_succeeded_job_is_an_invalid_transition(store: SqlStore) -> None:
    submit(store)
    job = claim_one(store)
    store.finish([completion(job, Outcome.SUCCEEDED)])

    with pytest.raises(InvalidTransition) as raised:
        store.cancel(job.id)

    assert raised.value.data["status"] == JobStatus.SUCCEEDED
    assert store.get_job(job.id).status is JobStatus.SUCCEEDED


def test_retry_of_a_queued_or_succeeded_job_is_refused(store: SqlStore) -> None:
    queued = submit(store)
    with pytest.raises(InvalidTransition):
        store.retry(queued.id)


def test_unknown_job_raises_job_not_found(store: SqlStore) -> None:
    missing = 987654

    with pytest.raises(JobNotFound):
        store.get_job(missing)
    with pytest.raises(JobNotFound):
        store.cancel(missing)
    with pytest.raises(JobNotFound):
        store.retry(missing)
    with pytest.raises(JobNotFound):
        store.resolve(missing, succeeded=True, note="", actor=None)
    with pytest.raises(JobNotFound):
        store.logs(missing)
    with pytest.raises(JobNotFound):
        store.evidence(missing)


# -- reading --------------------------------------------------------------------


def test_list_jobs_filters(store: SqlStore) -> None:
    a = submit(store, "acme.invoice", queue="q1")
    b = submit(store, "acme.refund", queue="q2")
    c = submit(store, "bank.pay", queue="q1")
    store.cancel(c.id)

    def ids(**filters: Any) -> tuple[list[int], int]:
        found, total = store.list_jobs(JobFilter(**filters))
        return [j.id for j in found], total

    assert ids() == ([c.id, b.id, a.id], 3)
    assert ids(status=JobStatus.QUEUED) == ([b.id, a.id], 2)
    assert ids(status=JobStatus.CANCELLED) == ([c.id], 1)
    assert ids(automation="acme.refund") == ([b.id], 1)
    assert ids(provider="acme") == ([b.id, a.id], 2)
    assert ids(queue="q1") == ([c.id, a.id], 2)
    assert ids(provider="acme", queue="q1") == ([a.id], 1)
    assert ids(since=datetime.now(UTC) + timedelta(minutes=1)) == ([], 0)
    assert ids(since=a.created_at) == ([c.id, b.id, a.id], 3)


def test_list_jobs_pages_newest_first(store: SqlStore) -> None:
    created = [submit(store).id for _ in range(7)]
    newest_first = list(reversed(created))

    pages = [store.list_jobs(JobFilter(), limit=3, offset=o) for o in (0, 3, 6, 9)]

    assert [[j.id for j in page] for page, _ in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
        [],
    ]
    assert {total for _, total in pages} == {7}


def test_logs_come_back_in_order(store: SqlStore) -> None:
    submit(store)
    job = claim_one(store)
    messages = [f"line {n}" for n in range(10)]

    refused = store.record_activity([log_item(job.id, job.attempt, m) for m in messages[:6]])
    store.record_activity([log_item(job.id, job.attempt, m, "WARNING") for m in messages[6:]])

    assert refused == 0
    lines = store.logs(job.id)
    assert [line.message for line in lines] == messages
    assert [line.level for line in lines] == ["INFO"] * 6 + ["WARNING"] * 4
    assert {line.attempt for line in lines} == {1}
    assert [line.id for line in lines] == sorted(line.id for line in lines)
    after = store.logs(job.id, after=lines[3].id, limit=2)
    assert [line.message for line in after] == messages[4:6]


def test_activity_records_steps_and_evidence(store: SqlStore) -> None:
    submit(store)
    job = claim_one(store)
    now = datetime.now(UTC)

    store.record_activity(
        [
            Activity(job.id, job.attempt, now, "step_start", {"name": "login"}),
            Activity(
                job.id,
                job.attempt,
                now,
                "evidence",
                {
                    "name": "shot.png",
                    "path": "/tmp/shot.png",
                    "content_type": "image/png",
                    "size": 3,
                    "step": "login",
                },
            ),
            Activity(job.id, job.attempt, now, "step_end", {"name": "login", "status": "done"}),
        ]
    )

    stored = store.get_job(job.id)
    assert [(s.name, s.kind, s.status) for s in stored.steps] == [("login", "step", "done")]
    [shot] = store.evidence(job.id)
    assert (shot.name, shot.step, shot.size, shot.attempt) == ("shot.png", "login", 3, 1)
    assert count(store, steps) == 1


def test_counts_by_status(store: SqlStore) -> None:
    for _ in range(3):
        submit(store)
    cancelled = submit(store)
    store.cancel(cancelled.id)
    running = claim(store, limit=2)
    store.finish([completion(running[0], Outcome.SUCCEEDED)])

    counts = store.counts_by_status()

    assert counts == {
        JobStatus.QUEUED: 1,
        JobStatus.RUNNING: 1,
        JobStatus.SUCCEEDED: 1,
        JobStatus.FAILED: 0,
        JobStatus.CANCELLED: 1,
        JobStatus.NEEDS_REVIEW: 0,
    }


def test_queued_queues_lists_only_runnable_queues(store: SqlStore) -> None:
    submit(store, queue="now")
    submit(store, queue="later", not_before=datetime.now(UTC) + timedelta(hours=1))

    assert store.queued_queues() == ["now"]
