"""Redis dispatch against real Redis servers: BLMOVE, acknowledgement, the reconciler, and a
Redis flushed or restarted in the middle of a run.

Workers here poll the store once an hour, so a job can only reach them through Redis (or, while
Redis is down, through the bus): a broken Redis path cannot hide behind the fallback poll.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import redis_url
from tests.tools import RedisServer

from botyard.automations import load_automations
from botyard.bus import Bus
from botyard.bus.redis_events import connect
from botyard.bus.redis_lists import Entry, RedisJobLists, Taken, processing_key, queue_key
from botyard.jobs import JobStatus
from botyard.orchestrator.reconciler import LiveWorkers, live_workers, reconcile
from botyard.orchestrator.service import JobService, Submission
from botyard.store import NewJob, SqlStore
from botyard.worker import PullWorker, WorkerConfig

pytestmark = pytest.mark.redis

AUTOMATIONS = str(Path(__file__).resolve().parent.parent / "automations_for_tests.py")


class RecordingLists(RedisJobLists):
    """The real lists, remembering which job ids each ``take`` brought (to see BLMOVE at work)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken_ids: list[int] = []

    def take(self, queue: str, worker_id: str, most: int, timeout: float) -> Taken:
        taken = super().take(queue, worker_id, most, timeout)
        self.taken_ids.extend(taken.job_ids)
        return taken


@pytest.fixture
def open_lists(redis_prefix: str) -> Iterator[Callable[..., RedisJobLists]]:
    opened: list[RedisJobLists] = []

    def make(url: str | None = None, cls: type[RedisJobLists] = RedisJobLists) -> RedisJobLists:
        lists = cls(connect(url or redis_url()), prefix=redis_prefix, cooldown=1.0)
        opened.append(lists)
        return lists

    yield make
    for lists in opened:
        lists.close()


@pytest.fixture
def start_worker(
    store: SqlStore, bus: Bus, tmp_path: Path
) -> Iterator[Callable[..., tuple[PullWorker, threading.Thread]]]:
    started: list[tuple[PullWorker, threading.Thread]] = []
    names = [n for n in load_automations([AUTOMATIONS]).names() if n.startswith("tests.")]

    def start(
        lists: RedisJobLists, worker_id: str, concurrency: int = 2
    ) -> tuple[PullWorker, threading.Thread]:
        config = WorkerConfig(
            automations=names,
            modules=[AUTOMATIONS],
            worker_id=worker_id,
            concurrency=concurrency,
            lease_ttl=5.0,
            recover_interval=0.5,
            poll_interval=3600,  # only Redis (or the bus while Redis is down) brings jobs
            heartbeat_interval=0.5,
            shutdown_grace=5.0,
            data_dir=tmp_path / "data",
        )
        worker = PullWorker(store, bus, config, lists=lists)
        thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
        thread.start()
        started.append((worker, thread))
        return worker, thread

    yield start
    for worker, thread in started:
        worker.stop(0)
        thread.join(30)
        assert not thread.is_alive()


def _idle(store: SqlStore, worker_id: str, wait_until: Any) -> None:
    """Registered and through its first claim: from now on only Redis can bring it a job."""
    wait_until(lambda: any(w.id == worker_id for w in store.workers.all()), timeout=20)
    time.sleep(0.3)


def _register_pull_worker(store: SqlStore, worker_id: str) -> None:
    """A live pull worker serving tests.ok on the default queue, as far as the store knows."""
    store.workers.register(
        worker_id,
        hostname="h",
        mode="pull",
        pid=1,
        automations=["tests.ok"],
        queues=["default"],
        capacity=1,
        version="test",
    )


def _tallies(path: Path) -> Counter[int]:
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines())


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_worker_takes_jobs_with_blmove_and_acknowledges_them(
    store: SqlStore,
    bus: Bus,
    open_lists: Callable[..., RedisJobLists],
    start_worker: Callable[..., tuple[PullWorker, threading.Thread]],
    redis_client: Any,
    redis_prefix: str,
    tmp_path: Path,
    wait_until: Any,
) -> None:
    lists = open_lists(cls=RecordingLists)
    assert isinstance(lists, RecordingLists)
    start_worker(lists, "blmove-1")
    _idle(store, "blmove-1", wait_until)
    service = JobService(store, bus, load_automations([AUTOMATIONS]), lists=open_lists())
    tally = tmp_path / "tally"

    ids = []
    for _ in range(5):
        job, _ = service.submit(
            Submission("tests.tally", {"path": str(tally)}), actor="test", client=None
        )
        ids.append(job.id)

    wait_until(lambda: all(store.get_job(i).status.is_final for i in ids), timeout=30)
    assert {store.get_job(i).status for i in ids} == {JobStatus.SUCCEEDED}
    assert sorted(lists.taken_ids) == ids  # every job came through BLMOVE, once
    assert _tallies(tally) == Counter(ids)
    # Acknowledged: nothing left on the queue or in the worker's processing list.
    assert redis_client.llen(queue_key("default", redis_prefix)) == 0
    assert redis_client.llen(processing_key("blmove-1", "default", redis_prefix)) == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_reconciler_gives_back_what_a_vanished_worker_took(
    store: SqlStore,
    open_lists: Callable[..., RedisJobLists],
    redis_client: Any,
    redis_prefix: str,
) -> None:
    lists = open_lists()
    ghost, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "ghost"}))
    live, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "live"}))
    lists.announce("default", [ghost.id, live.id])
    # "ghost" took an entry and died before claiming; "alive-1" is between take and claim.
    assert lists.take("default", "ghost", 1, 0.1).job_ids == [ghost.id]
    assert lists.take("default", "alive-1", 1, 0.1).job_ids == [live.id]
    _register_pull_worker(store, "alive-1")

    done = reconcile(store, lists, live_workers(store, stale_after=30), settle=0)

    assert done["reclaimed"] == 1
    assert redis_client.llen(processing_key("ghost", "default", redis_prefix)) == 0
    assert redis_client.lrange(processing_key("alive-1", "default", redis_prefix), 0, -1) == [
        Entry(live.id, "default").encode()
    ]
    # The ghost's entry is back on the queue. The live worker keeps its own, but that does not
    # stand for its job (its claim may take another one), so the job gets a second entry.
    assert sorted(redis_client.lrange(queue_key("default", redis_prefix), 0, -1)) == sorted(
        [Entry(ghost.id, "default").encode(), Entry(live.id, "default").encode()]
    )
    assert done["republished"] == 1


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_reconciler_republishes_lost_jobs_and_drops_stale_entries(
    store: SqlStore,
    open_lists: Callable[..., RedisJobLists],
    redis_client: Any,
    redis_prefix: str,
) -> None:
    lists = open_lists()
    low, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "low"}))
    high, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "high"}, priority=5))
    other, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "o"}, queue="other"))
    gone, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "gone"}))
    store.cancel(gone.id)
    lists.announce("default", [gone.id])  # an entry whose job will never run

    # Just submitted: maybe on its way to Redis still, so not announced a second time.
    live = LiveWorkers({"w"}, {("default", "tests.ok"), ("other", "tests.ok")})
    young = reconcile(store, lists, live, settle=30)
    assert young == {"republished": 0, "reclaimed": 0, "discarded": 1}  # the cancelled job's

    done = reconcile(store, lists, live, settle=0)

    assert done == {"republished": 3, "reclaimed": 0, "discarded": 0}
    # Taken from the right: the job the store would claim first is the first to be taken.
    default = redis_client.lrange(queue_key("default", redis_prefix), 0, -1)
    assert default[::-1] == [Entry(high.id, "default").encode(), Entry(low.id, "default").encode()]
    assert redis_client.lrange(queue_key("other", redis_prefix), 0, -1) == [
        Entry(other.id, "other").encode()
    ]
    again = reconcile(store, lists, live, settle=0)
    assert again == {"republished": 0, "reclaimed": 0, "discarded": 0}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_reconciler_announces_only_what_a_live_pull_worker_serves(
    store: SqlStore, open_lists: Callable[..., RedisJobLists], redis_client: Any, redis_prefix: str
) -> None:
    lists = open_lists()
    served, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "a"}))
    store.submit(NewJob(automation="tests.flaky", payload={}))  # nobody runs it now
    store.submit(NewJob(automation="tests.ok", payload={"name": "b"}, queue="elsewhere"))
    _register_pull_worker(store, "pull-1")

    done = reconcile(store, lists, live_workers(store, stale_after=30), settle=0)

    # Re-announcing the others every round would only make workers claim nothing, again and
    # again; they get their entries when a worker that runs them is back.
    assert done["republished"] == 1
    assert redis_client.lrange(queue_key("default", redis_prefix), 0, -1) == [
        Entry(served.id, "default").encode()
    ]


@pytest.mark.parametrize("disruption", ["flushall", "restart"])
def test_every_job_completes_exactly_once_when_redis_loses_everything_mid_run(
    disruption: str,
    store: SqlStore,
    bus: Bus,
    private_redis: RedisServer,
    open_lists: Callable[..., RedisJobLists],
    start_worker: Callable[..., tuple[PullWorker, threading.Thread]],
    tmp_path: Path,
    wait_until: Any,
) -> None:
    total, disrupt_at = 240, 80
    for worker_id in ("w1", "w2"):
        start_worker(open_lists(private_redis.url), worker_id, concurrency=3)
    for worker_id in ("w1", "w2"):
        _idle(store, worker_id, wait_until)
    service = JobService(
        store, bus, load_automations([AUTOMATIONS]), lists=open_lists(private_redis.url)
    )
    reconciler_lists = open_lists(private_redis.url)
    stop = threading.Event()
    reconciled: list[dict[str, int]] = []

    def reconcile_often() -> None:  # what the orchestrator's leader does every few seconds
        while not stop.wait(0.5):
            try:
                done = reconcile(store, reconciler_lists, live_workers(store, 5))
            except Exception:  # Redis down: next round
                continue
            reconciled.append(done)

    reconciler = threading.Thread(target=reconcile_often)
    reconciler.start()
    tally = tmp_path / "tally"
    ids: list[int] = []
    try:
        for n in range(total):
            if n == disrupt_at:
                if disruption == "flushall":
                    connect(private_redis.url).flushall()
                else:
                    private_redis.restart(down_for=1.0)
            # The burst's jobs are slower, so that a backlog is still on Redis when it goes,
            # however slowly a loaded machine submits them.
            seconds = 0.2 if n < disrupt_at else 0.05
            job, _ = service.submit(
                Submission("tests.tally", {"path": str(tally), "seconds": seconds}),
                actor="test",
                client=None,
            )
            ids.append(job.id)
            if n >= disrupt_at:  # the first ones at once: Redis holds a backlog when it goes
                time.sleep(0.005)
        wait_until(
            lambda: all(store.get_job(i, detail=False).status.is_final for i in ids), timeout=90
        )
    finally:
        stop.set()
        reconciler.join(10)

    jobs = [store.get_job(i, detail=False) for i in ids]
    assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}
    assert {job.attempt for job in jobs} == {1}  # no attempt lost, none run twice
    assert _tallies(tally) == Counter(ids)  # each ran exactly once
    # Entries Redis lost came back through the reconciler (workers here never poll the store).
    assert sum(done["republished"] for done in reconciled) > 0
