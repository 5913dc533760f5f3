"""Concurrency keys: never more than the limit of running jobs per key, on every store.

The claim keeps the limit (store/claims.py); these tests hold it to that in batches, across
every way a job leaves ``running``, through submission and a worker, and with many claimers
at once.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError
from tests.api_helpers import MakeApi, token
from tests.conftest import truncate

from botyard.automations import load_automations
from botyard.automations.registry import Registry, automation
from botyard.bus import Bus, Event
from botyard.bus.base import JOBS
from botyard.concurrency import ConcurrencyLimits
from botyard.errors import PayloadInvalid
from botyard.jobs import JobStatus, Outcome
from botyard.orchestrator.service import JobService, Submission
from botyard.store import ClaimedJob, Completion, NewJob, SqlStore, claims, open_store
from botyard.store.tables import attempts, jobs
from botyard.worker import PullWorker, WorkerConfig

AUTOMATION = "mfn.validation"
KEY = "mfn:ops"


def submit(store: SqlStore, key: str | None = None, limit: int | None = None, **kw: Any) -> int:
    job, created = store.submit(
        NewJob(
            AUTOMATION, kw.pop("payload", {}), concurrency_key=key, concurrency_limit=limit, **kw
        )
    )
    assert created
    return job.id


def claim(store: SqlStore, limit: int = 5, lease_ttl: float = 30.0) -> list[ClaimedJob]:
    return store.claim(
        "worker-a", queues=["default"], automations=[AUTOMATION], limit=limit, lease_ttl=lease_ttl
    )


def finish(
    store: SqlStore, job: ClaimedJob, outcome: Outcome = Outcome.SUCCEEDED, **kw: Any
) -> Any:
    (status,) = store.finish(
        [
            Completion(
                job.id,
                job.attempt,
                outcome,
                job.max_attempts,
                job.idempotent,
                attempt_base=job.attempt_base,
                **kw,
            )
        ]
    )
    return status


_OVER_LIMIT = (
    select(jobs.c.concurrency_key, func.count(), func.min(jobs.c.concurrency_limit))
    .where(jobs.c.status == "running", jobs.c.concurrency_key.is_not(None))
    .group_by(jobs.c.concurrency_key)
    .having(func.count() > func.min(jobs.c.concurrency_limit))
)


def over_limit(conn: Connection) -> list[tuple[Any, ...]]:
    """Keys with more running jobs than their limit, as the store has them now."""
    return [tuple(row) for row in conn.execute(_OVER_LIMIT)]


def _reading(store: SqlStore) -> Connection:
    """A read-only connection (on SQLite, one that never takes the write lock)."""
    return store.engine.connect().execution_options(readonly=True)


def running_with(store: SqlStore, key: str) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.id).where(jobs.c.status == "running", jobs.c.concurrency_key == key)
        )
        return sorted(r.id for r in rows)


# -- one claim at a time ------------------------------------------------------------


def test_a_batch_takes_one_job_of_a_key_and_fills_up_with_other_jobs(store: SqlStore) -> None:
    keyed = [submit(store, KEY, 1, payload={"n": n}) for n in range(5)]
    others = [submit(store, payload={"n": n}) for n in range(5)]

    batch = claim(store, limit=5)

    assert [j.id for j in batch] == [keyed[0], *others[:4]]
    assert [j.concurrency_key for j in batch] == [KEY, None, None, None, None]
    assert [j.id for j in claim(store, limit=5)] == [others[4]]  # nothing more of the key
    assert claim(store, limit=5) == []

    assert finish(store, batch[0]) is JobStatus.SUCCEEDED
    assert [j.id for j in claim(store, limit=5)] == [keyed[1]]
    assert running_with(store, KEY) == [keyed[1]]


def test_a_limit_of_two_runs_two_at_once(store: SqlStore) -> None:
    keyed = [submit(store, KEY, 2) for _ in range(5)]
    other = submit(store)

    first = claim(store, limit=5)
    assert [j.id for j in first] == [*keyed[:2], other]
    assert claim(store, limit=5) == []

    finish(store, first[1])
    assert [j.id for j in claim(store, limit=5)] == [keyed[2]]
    assert running_with(store, KEY) == [keyed[0], keyed[2]]


def slots_of(store: SqlStore, key: str) -> dict[int, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.id, jobs.c.concurrency_slot).where(
                jobs.c.status == "running", jobs.c.concurrency_key == key
            )
        )
        return {r.id: r.concurrency_slot for r in rows}


def test_running_jobs_of_a_key_hold_distinct_slots_and_fill_the_gaps(store: SqlStore) -> None:
    keyed = [submit(store, KEY, 3) for _ in range(6)]
    first = claim(store, limit=5)
    assert [j.id for j in first] == keyed[:3]
    assert slots_of(store, KEY) == {keyed[0]: 0, keyed[1]: 1, keyed[2]: 2}

    finish(store, first[0])
    finish(store, first[2])
    assert [j.id for j in claim(store, limit=5)] == keyed[3:5]
    assert slots_of(store, KEY) == {keyed[1]: 1, keyed[3]: 0, keyed[4]: 2}


def test_a_lower_limit_counts_the_jobs_running_under_a_higher_one(store: SqlStore) -> None:
    wide = [submit(store, KEY, 3) for _ in range(3)]
    assert [j.id for j in claim(store, limit=5)] == wide
    narrow = [submit(store, KEY, 2) for _ in range(2)]
    finish(store, claim_of(store, wide[0]))
    finish(store, claim_of(store, wide[1]))
    # One job runs in slot 2, above the new limit of 2: one more may run, not two.
    assert [j.id for j in claim(store, limit=5)] == narrow[:1]
    assert slots_of(store, KEY) == {wide[2]: 2, narrow[0]: 0}


def claim_of(store: SqlStore, job_id: int) -> ClaimedJob:
    claimed = store.claimed_job(job_id, store.get_job(job_id, detail=False).attempt, "worker-a")
    assert claimed is not None
    return claimed


def test_keys_are_counted_apart(store: SqlStore) -> None:
    ops = [submit(store, "mfn:ops", 1) for _ in range(3)]
    sales = [submit(store, "mfn:sales", 1) for _ in range(3)]
    assert [j.id for j in claim(store, limit=5)] == [ops[0], sales[0]]


def test_a_saturated_key_does_not_hold_up_the_jobs_behind_it(store: SqlStore) -> None:
    keyed = [submit(store, KEY, 1, priority=10) for _ in range(20)]
    others = [submit(store) for _ in range(6)]

    assert [j.id for j in claim(store, limit=3)] == [keyed[0], *others[:2]]
    assert [j.id for j in claim(store, limit=3)] == others[2:5]
    assert [j.id for j in claim(store, limit=3)] == others[5:]


def test_a_batch_of_one_passes_over_a_saturated_key(store: SqlStore) -> None:
    first = submit(store, KEY, 1, priority=5)
    submit(store, KEY, 1, priority=5)
    other = submit(store)
    assert [j.id for j in claim(store, limit=1)] == [first]
    assert [j.id for j in claim(store, limit=1)] == [other]


def _expire(store: SqlStore, job: ClaimedJob) -> None:
    time.sleep(0.3)  # past the claim's lease of 0.2 s
    assert [job_id for job_id, _ in store.recover_expired()] == [job.id]


LEAVING: dict[str, Callable[[SqlStore, ClaimedJob], Any]] = {
    "succeeded": lambda s, j: finish(s, j),
    "failed": lambda s, j: finish(s, j, Outcome.BUSINESS_ERROR),
    "retried": lambda s, j: finish(s, j, Outcome.ERROR),
    "released": lambda s, j: s.finish([Completion.release(j)]),
    "needs_review": lambda s, j: finish(s, j, Outcome.CRASHED, side_effect="cancel circuit"),
    "cancelled": lambda s, j: s.cancel(j.id),
    "lease_expired": _expire,
}


@pytest.mark.parametrize("how", list(LEAVING))
def test_a_job_leaving_running_frees_its_key(store: SqlStore, how: str) -> None:
    keyed = [submit(store, KEY, 1) for _ in range(3)]
    (held,) = claim(store, limit=5, lease_ttl=0.2)
    assert held.id == keyed[0]

    LEAVING[how](store, held)

    assert store.get_job(held.id, detail=False).status is not JobStatus.RUNNING
    (following,) = claim(store, limit=5)
    # A job given back at once is first in line again; otherwise the next one runs.
    assert following.id == (keyed[0] if how in ("released", "lease_expired") else keyed[1])
    assert running_with(store, KEY) == [following.id]


def test_a_job_sent_back_for_review_and_retried_waits_for_its_key(store: SqlStore) -> None:
    first, second = submit(store, KEY, 1), submit(store, KEY, 1)
    (job,) = claim(store)
    finish(store, job, Outcome.CRASHED, side_effect="cancel circuit")
    (next_job,) = claim(store)
    assert next_job.id == second

    store.retry(first)  # a person sends it back while the key is busy
    assert claim(store) == []
    finish(store, next_job)
    assert [j.id for j in claim(store)] == [first]


def test_the_index_refuses_a_second_running_job_in_one_slot(store: SqlStore) -> None:
    first, second = submit(store, KEY, 1), submit(store, KEY, 1)
    claim(store)
    with pytest.raises(IntegrityError) as caught, store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == second)
            .values(status="running", concurrency_slot=0, attempt=1, worker_id="rogue")
        )
    assert claims.lost_slot_race(caught.value) is store.is_postgres
    assert running_with(store, KEY) == [first]


# -- PostgreSQL: claimers side by side ----------------------------------------------


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[SqlStore]:
    """SQLite runs one claim at a time (``BEGIN IMMEDIATE``): these are PostgreSQL's alone."""
    truncate(postgres_url)
    opened = open_store(postgres_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.postgres
def test_a_claimer_skips_a_key_another_claimer_holds_without_waiting(pg_store: SqlStore) -> None:
    store = pg_store
    keyed = [submit(store, KEY, 2) for _ in range(4)]
    other = submit(store)
    with store.engine.connect() as first:
        with first.begin():
            mine = claims.claim(
                first,
                worker_id="first",
                queues=["default"],
                automations=[AUTOMATION],
                limit=1,
                lease_ttl=30,
            )
            assert [j.id for j in mine] == [keyed[0]]
            # The first claim has not committed: the key is its to fill until it does.
            started = time.monotonic()
            assert [j.id for j in claim(store, limit=5)] == [other]
            assert time.monotonic() - started < 1.0
        assert [j.id for j in claim(store, limit=5)] == [keyed[1]]
    assert running_with(store, KEY) == keyed[:2]


@pytest.mark.postgres
def test_a_claim_that_lost_a_slot_race_runs_again(
    pg_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_store
    first, second = submit(store, KEY, 1), submit(store, KEY, 1)
    real_claim = claims.claim
    calls: list[int] = []

    def racing(conn: Connection, **kwargs: Any) -> list[ClaimedJob]:
        calls.append(1)
        if len(calls) == 1:  # another claimer commits the first slot under this one's feet
            with store.engine.begin() as other:
                real_claim(other, **{**kwargs, "worker_id": "other", "limit": 1})
            conn.execute(
                update(jobs).where(jobs.c.id == second).values(status="running", concurrency_slot=0)
            )
        return real_claim(conn, **kwargs)

    monkeypatch.setattr(claims, "claim", racing)
    assert claim(store) == []  # the retry sees the slot taken
    assert len(calls) == 2
    assert running_with(store, KEY) == [first]


# -- many claimers at once ------------------------------------------------------------

LIMITS = {"mfn:a": 1, "mfn:b": 1, "mfn:c": 2, "portal:d": 3}
PER_KEY = 40
UNKEYED = 60
ROUNDS = 3
CLAIMERS = 8
BATCH = 4


def _claimer(
    url: str,
    name: str,
    holding: Counter[str],
    lock: threading.Lock,
    claimed: list[int],
    problems: list[str],
) -> None:
    store = open_store(url, migrate=False, pool_size=2)
    rng = random.Random(name)
    try:
        while True:
            batch = store.claim(
                name, queues=["default"], automations=[AUTOMATION], limit=BATCH, lease_ttl=60
            )
            if not batch:
                if store.counts_by_status()[JobStatus.QUEUED] == 0:
                    return
                time.sleep(0.001)  # the keys left are held by others: wait for one to finish
                continue
            with _reading(store) as conn:  # right after the claim, inside the store
                if found := over_limit(conn):
                    problems.append(f"{name} found {found} after claiming")
            with lock:
                claimed.extend(job.id for job in batch)
                for job in batch:
                    if job.concurrency_key is not None:
                        holding[job.concurrency_key] += 1
                        if holding[job.concurrency_key] > LIMITS[job.concurrency_key]:
                            problems.append(f"{name} holds {job.concurrency_key} too many times")
            time.sleep(rng.uniform(0, 0.002))  # the jobs run
            with lock:  # given up before the store hears of it, so never counted too late
                for job in batch:
                    if job.concurrency_key is not None:
                        holding[job.concurrency_key] -= 1
            statuses = store.finish(
                [
                    Completion(j.id, j.attempt, Outcome.SUCCEEDED, j.max_attempts, j.idempotent)
                    for j in batch
                ]
            )
            if statuses != [JobStatus.SUCCEEDED] * len(batch):
                problems.append(f"{name} could not finish its own jobs: {statuses}")
    except BaseException as exc:
        problems.append(f"{name}: {exc!r}")
    finally:
        store.close()


def _watch(url: str, stop: threading.Event, problems: list[str], looks: list[int]) -> None:
    store = open_store(url, migrate=False, pool_size=1)
    try:
        with _reading(store) as conn:
            while not stop.is_set():
                if found := over_limit(conn):
                    problems.append(f"the watcher found {found}")
                conn.commit()  # a fresh snapshot for the next look
                looks.append(1)
                time.sleep(0.0005)
    finally:
        store.close()


def test_concurrent_claimers_never_run_more_than_a_keys_limit(
    store_url: str, store: SqlStore
) -> None:
    for _ in range(ROUNDS):
        submitted = [
            submit(store, key, limit, payload={"n": n})
            for n in range(PER_KEY)
            for key, limit in LIMITS.items()
        ]
        submitted += [submit(store, payload={"n": n}) for n in range(UNKEYED)]
        holding: Counter[str] = Counter()
        lock = threading.Lock()
        per_claimer: list[list[int]] = [[] for _ in range(CLAIMERS)]
        problems: list[str] = []
        looks: list[int] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(store_url, stop, problems, looks))
        watcher.start()
        threads = [
            threading.Thread(
                target=_claimer,
                args=(store_url, f"claimer-{i}", holding, lock, per_claimer[i], problems),
            )
            for i in range(CLAIMERS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=100)
        stop.set()
        watcher.join(timeout=10)

        assert not any(t.is_alive() for t in threads)
        assert problems == []
        assert looks  # the watcher did look while they claimed
        claimed = Counter(job_id for ids in per_claimer for job_id in ids)
        assert sorted(claimed) == sorted(submitted)
        assert set(claimed.values()) == {1}
        assert sum(1 for ids in per_claimer if ids) > 1  # the claimers really did compete
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(attempts)).scalar_one() == (
            ROUNDS * (PER_KEY * len(LIMITS) + UNKEYED)
        )
    assert store.counts_by_status()[JobStatus.SUCCEEDED] == ROUNDS * (
        PER_KEY * len(LIMITS) + UNKEYED
    )


# -- submission -----------------------------------------------------------------------


class _NoBus:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def subscribe(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _service(store: SqlStore, limits: str = "") -> tuple[JobService, _NoBus]:
    registry = Registry()

    @automation("mfn.validation", registry=registry, concurrency_key="mfn:{account}")
    def validate(ctx: Any, circuit_number: str, account: str = "default") -> None: ...

    @automation("mfn.bulk", registry=registry, concurrency_key="mfn:{account}", concurrency_limit=4)
    def bulk(ctx: Any, account: str) -> None: ...

    @automation("portal.sync", registry=registry, concurrency_key="portal:{account}")
    def sync(ctx: Any, **payload: Any) -> None: ...

    @automation("portal.status", registry=registry)
    def status(ctx: Any) -> None: ...

    bus = _NoBus()
    return JobService(store, bus, registry, ConcurrencyLimits.parse(limits)), bus


def test_submission_renders_the_key_and_stores_its_limit(store: SqlStore) -> None:
    service, _ = _service(store, "mfn:vip*=3")

    def submitted(name: str, payload: dict[str, Any]) -> tuple[str | None, int | None]:
        job, _ = service.submit(Submission(name, payload), actor="olivia")
        stored = store.get_job(job.id, detail=False)
        return stored.concurrency_key, stored.concurrency_limit

    assert submitted("mfn.validation", {"circuit_number": "C1"}) == ("mfn:default", 1)
    assert submitted("mfn.validation", {"circuit_number": "C1", "account": "ops"}) == (
        "mfn:ops",
        1,
    )
    assert submitted("mfn.bulk", {"account": "ops"}) == ("mfn:ops", 4)
    assert submitted("mfn.bulk", {"account": "vip-1"}) == ("mfn:vip-1", 3)  # the override wins
    assert submitted("portal.status", {}) == (None, None)


def test_a_key_the_payload_lacks_rejects_the_submission(store: SqlStore) -> None:
    service, bus = _service(store)
    with pytest.raises(PayloadInvalid) as caught:
        service.submit(Submission("portal.sync", {"region": "west"}), actor="olivia")
    assert caught.value.errors[0]["loc"] == ["account"]
    assert store.counts_by_status() == dict.fromkeys(JobStatus, 0)
    assert bus.events == []


def test_jobs_started_outside_botyard_have_no_key(store: SqlStore) -> None:
    service, _ = _service(store)
    job = service.start_external(
        "mfn.validation", {"account": "ops"}, worker_id="standby-1", task_id="t1", timeout=60
    )
    assert job.concurrency_key is None
    assert store.get_job(job.id, detail=False).concurrency_key is None


def test_cancelling_a_running_keyed_job_wakes_the_workers_of_its_queue(store: SqlStore) -> None:
    service, bus = _service(store)
    job, _ = service.submit(Submission("mfn.bulk", {"account": "ops"}), actor="olivia")
    bus.events.clear()
    store.claim("w", queues=["default"], automations=["mfn.bulk"], limit=1, lease_ttl=30)
    service.cancel(job.id, actor="olivia")
    assert Event(JOBS, "default") in bus.events


def test_the_api_shows_the_key_and_answers_422_when_the_payload_lacks_it(
    make_api: MakeApi, store_url: str, tmp_path: Path
) -> None:
    module = tmp_path / "concurrency_key_automations.py"
    module.write_text(
        "from typing import Any\n"
        "from botyard import automation\n\n"
        '@automation("keys.sync", concurrency_key="portal:{account}")\n'
        "def sync(ctx: Any, **payload: Any) -> None: ...\n"
    )
    api = make_api(
        store_url, BOTYARD_AUTOMATIONS=str(module), BOTYARD_CONCURRENCY_LIMITS="portal:*=2"
    )
    headers = token(api, "admin", "admin-password")

    refused = api.post("/jobs", json={"automation": "keys.sync", "payload": {}}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "payload", "account"]

    created = api.post(
        "/jobs", json={"automation": "keys.sync", "payload": {"account": "ops"}}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["concurrency_key"] == "portal:ops"
    shown = api.get(f"/jobs/{created.json()['id']}", headers=headers).json()
    assert shown["concurrency_key"] == "portal:ops"
    listed = api.get("/jobs", headers=headers).json()["items"]
    assert [j["concurrency_key"] for j in listed] == ["portal:ops"]
    store: SqlStore = api.app.state.runtime.store  # type: ignore[attr-defined]
    assert store.get_job(created.json()["id"], detail=False).concurrency_limit == 2


# -- a worker --------------------------------------------------------------------------

TEST_AUTOMATIONS = str(Path(__file__).resolve().parent.parent / "automations_for_tests.py")


@pytest.fixture
def worker(store: SqlStore, bus: Bus, tmp_path: Path) -> Iterator[PullWorker]:
    names = [n for n in load_automations([TEST_AUTOMATIONS]).names() if n.startswith("tests.")]
    config = WorkerConfig(
        automations=names,
        modules=[TEST_AUTOMATIONS],
        worker_id="keyed-worker",
        concurrency=3,
        lease_ttl=5.0,
        recover_interval=0.5,
        poll_interval=3600.0,  # only wake-ups: the fallback poll would hide a missing one
        heartbeat_interval=0.5,
        shutdown_grace=5.0,
        data_dir=tmp_path / "data",
    )
    running = PullWorker(store, bus, config)
    thread = threading.Thread(target=running.run, kwargs={"install_signals": False})
    thread.start()
    try:
        yield running
    finally:
        running.stop(grace=0)
        thread.join(30)


def test_a_worker_runs_a_keys_jobs_one_after_another_without_polling(
    store: SqlStore, bus: Bus, worker: PullWorker, wait_until: Any
) -> None:
    ids = []
    for _ in range(3):
        job, _ = store.submit(
            NewJob("tests.slow", {"seconds": 0.2}, concurrency_key=KEY, concurrency_limit=1)
        )
        ids.append(job.id)
    bus.publish(Event(JOBS, "default"))

    wait_until(
        lambda: all(store.get_job(i, detail=False).status is JobStatus.SUCCEEDED for i in ids),
        timeout=30,
    )
    runs = sorted((a.started_at, a.finished_at) for i in ids for a in store.get_job(i).attempts)
    assert len(runs) == 3
    for (_, ended), (started, _) in itertools.pairwise(runs):
        assert ended is not None and ended <= started  # never two at once
