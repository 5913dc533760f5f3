"""Job status events on Redis pub/sub, worker heartbeat keys, and what the API shows of them.

Against the machine's real Redis (BOTYARD_TEST_REDIS_URL). Every test uses a prefix of its own
for channels and keys (pub/sub ignores the database number), and removes its keys.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.api_helpers import MakeApi, token

from botyard.automations import load_automations
from botyard.bus import Bus
from botyard.bus.redis_events import RedisEventPublisher, connect
from botyard.events import Heartbeat, jobs_channel, worker_key
from botyard.jobs import JobStatus
from botyard.orchestrator.service import JobService, Submission
from botyard.store import SqlStore
from botyard.worker import PullWorker, WorkerConfig

pytestmark = pytest.mark.redis

AUTOMATIONS = str(Path(__file__).resolve().parent.parent / "automations_for_tests.py")
REDIS_URL = os.environ.get("BOTYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SCHEMA_KEYS = {
    "v",
    "type",
    "job_id",
    "attempt",
    "status",
    "previous",
    "automation",
    "queue",
    "worker_id",
    "at",
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """Channels and keys of the test's own (``redis_prefix`` removes them after)."""
    return redis_prefix


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only (the store and bus fixtures use it): what is tested here is the Redis side."""
    return f"sqlite:///{tmp_path}/botyard.db"


@pytest.fixture
def publisher(prefix: str) -> Iterator[RedisEventPublisher]:
    opened = RedisEventPublisher(connect(REDIS_URL), prefix=prefix, heartbeat_ttl=30)
    try:
        yield opened
    finally:
        opened.close()


class Listener:
    """Subscribes before anything happens and keeps every message per channel."""

    def __init__(self, client: Any, channels: list[str]) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*channels)
        self.messages: dict[str, list[dict[str, Any]]] = {c: [] for c in channels}
        # Wait for the subscriptions to be in place, or early events would be missed.
        confirmed = 0
        deadline = time.monotonic() + 5
        while confirmed < len(channels) and time.monotonic() < deadline:
            message = self.pubsub.parse_response(block=False, timeout=0.5)
            if message and message[0] == "subscribe":
                confirmed += 1
        assert confirmed == len(channels)

    def until(self, channel: str, done: Callable[[list[dict[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + 20
        while not done(self.messages[channel]):
            assert time.monotonic() < deadline, f"{channel}: {self.messages[channel]}"
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                self.messages[message["channel"]].append(json.loads(message["data"]))

    def drain(self, seconds: float) -> None:
        """Collect whatever arrives for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.1)
            if message is not None:
                self.messages[message["channel"]].append(json.loads(message["data"]))

    def close(self) -> None:
        self.pubsub.close()


def _service(store: SqlStore, bus: Bus, publisher: Any) -> JobService:
    return JobService(store, bus, load_automations([AUTOMATIONS]), events=publisher)


def _start_worker(
    store: SqlStore, bus: Bus, tmp_path: Path, publisher: Any, worker_id: str
) -> tuple[PullWorker, threading.Thread]:
    names = [n for n in load_automations([AUTOMATIONS]).names() if n.startswith("tests.")]
    config = WorkerConfig(
        automations=names,
        modules=[AUTOMATIONS],
        worker_id=worker_id,
        concurrency=1,
        lease_ttl=5.0,
        recover_interval=0.5,
        poll_interval=0.5,
        heartbeat_interval=0.5,
        shutdown_grace=5.0,
        data_dir=tmp_path / "data",
    )
    worker = PullWorker(store, bus, config, events=publisher)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    return worker, thread


def _stop(worker: PullWorker, thread: threading.Thread) -> None:
    worker.stop(0)
    thread.join(30)
    assert not thread.is_alive()


def _settled(store: SqlStore, job_id: int, wait_until: Any) -> JobStatus:
    def check() -> bool:
        return store.get_job(job_id, detail=False).status.is_final

    wait_until(check, timeout=30)
    return store.get_job(job_id, detail=False).status


def test_a_jobs_life_arrives_in_order_on_both_channels(
    store: SqlStore,
    bus: Bus,
    tmp_path: Path,
    publisher: RedisEventPublisher,
    prefix: str,
    redis_client: Any,
    wait_until: Any,
) -> None:
    everything, per_queue = jobs_channel(prefix), jobs_channel(prefix, "default")
    listener = Listener(redis_client, [everything, per_queue])
    worker, thread = _start_worker(store, bus, tmp_path, publisher, "events-w1")
    try:
        service = _service(store, bus, publisher)
        job, _ = service.submit(Submission("tests.ok", {"name": "ada"}), actor="test")
        assert _settled(store, job.id, wait_until) is JobStatus.SUCCEEDED
        for channel in (everything, per_queue):
            listener.until(channel, lambda got: len(got) >= 3)
            got = listener.messages[channel]
            assert [(e["previous"], e["status"]) for e in got] == [
                (None, "queued"),
                ("queued", "running"),
                ("running", "succeeded"),
            ]
            for event in got:
                assert set(event) == SCHEMA_KEYS
                assert event["v"] == 1 and event["type"] == "job.status"
                assert event["job_id"] == job.id
                assert event["automation"] == "tests.ok" and event["queue"] == "default"
                assert datetime.fromisoformat(event["at"]).tzinfo is not None
            assert [e["attempt"] for e in got] == [0, 1, 1]  # 0: no attempt started yet
            assert got[0]["worker_id"] is None
            assert got[1]["worker_id"] == got[2]["worker_id"] == "events-w1"
        assert listener.messages[everything] == listener.messages[per_queue]
    finally:
        _stop(worker, thread)
        listener.close()


def test_cancel_and_retry_are_announced(
    store: SqlStore,
    bus: Bus,
    publisher: RedisEventPublisher,
    prefix: str,
    redis_client: Any,
) -> None:
    channel = jobs_channel(prefix, "later")
    listener = Listener(redis_client, [channel])
    try:
        service = _service(store, bus, publisher)
        later = datetime.now(UTC) + timedelta(hours=1)
        job, _ = service.submit(
            Submission("tests.ok", {"name": "x"}, queue="later", not_before=later), actor="t"
        )
        service.cancel(job.id, actor="t")
        listener.until(channel, lambda got: len(got) >= 2)
        assert [(e["previous"], e["status"]) for e in listener.messages[channel]] == [
            (None, "queued"),
            ("queued", "cancelled"),
        ]
    finally:
        listener.close()


def test_cancelling_a_running_job_is_announced_once(
    store: SqlStore,
    bus: Bus,
    tmp_path: Path,
    publisher: RedisEventPublisher,
    prefix: str,
    redis_client: Any,
    wait_until: Any,
) -> None:
    channel = jobs_channel(prefix)
    listener = Listener(redis_client, [channel])
    worker, thread = _start_worker(store, bus, tmp_path, publisher, "events-cancel")
    try:
        service = _service(store, bus, publisher)
        job, _ = service.submit(Submission("tests.slow", {"seconds": 30}), actor="t")
        listener.until(channel, lambda got: len(got) >= 2)
        service.cancel(job.id, actor="t")
        wait_until(lambda: worker.slots[0].running() is None, timeout=20)
        assert publisher.flush()
        listener.until(channel, lambda got: len(got) >= 3)
        listener.drain(1.0)  # anything the worker would add after the cancel
        assert [(e["previous"], e["status"]) for e in listener.messages[channel]] == [
            (None, "queued"),
            ("queued", "running"),
            ("running", "cancelled"),
        ]
    finally:
        _stop(worker, thread)
        listener.close()


def test_jobs_run_when_redis_is_down(
    store: SqlStore,
    bus: Bus,
    tmp_path: Path,
    wait_until: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = RedisEventPublisher(
        connect(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.5), prefix="test-down"
    )
    worker, thread = _start_worker(store, bus, tmp_path, down, "events-down")
    try:
        service = _service(store, bus, down)
        with caplog.at_level(logging.WARNING, logger="botyard.events"):
            started = time.monotonic()
            jobs = [
                service.submit(Submission("tests.ok", {"name": str(n)}), actor="t")[0]
                for n in range(3)
            ]
            assert time.monotonic() - started < 2.0  # publishing never waits on Redis
            for job in jobs:
                assert _settled(store, job.id, wait_until) is JobStatus.SUCCEEDED
            time.sleep(1.0)  # a few heartbeats, all failing
            assert down.flush(timeout=5)
        warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(warnings) == 1  # at most once a minute
        assert down.dropped > 0
    finally:
        _stop(worker, thread)
        down.close()


def test_heartbeat_keys_with_ttl_and_stats(
    store: SqlStore,
    bus: Bus,
    tmp_path: Path,
    publisher: RedisEventPublisher,
    prefix: str,
    redis_client: Any,
    wait_until: Any,
) -> None:
    worker, thread = _start_worker(store, bus, tmp_path, publisher, "events-beat")
    key = worker_key("events-beat", prefix)
    try:
        service = _service(store, bus, publisher)
        ok = [service.submit(Submission("tests.ok", {"name": str(n)}), actor="t")[0] for n in "ab"]
        bad = service.submit(Submission("tests.business", {}), actor="t")[0]
        for job in ok:
            assert _settled(store, job.id, wait_until) is JobStatus.SUCCEEDED
        assert _settled(store, bad.id, wait_until) is JobStatus.FAILED
        wait_until(lambda: redis_client.hget(f"{key}:stats", "processed") == "3", timeout=10)
        stats = redis_client.hgetall(f"{key}:stats")
        assert (stats["processed"], stats["succeeded"], stats["failed"]) == ("3", "2", "1")
        beat = redis_client.hgetall(key)
        assert beat["status"] == "online" and beat["mode"] == "pull"
        assert beat["pid"] == str(os.getpid()) and beat["capacity"] == "1"
        assert beat["queues"] == "default" and beat["version"]
        assert set(beat) >= {"hostname", "active", "last_heartbeat"}
        assert 0 < redis_client.ttl(key) <= 30
    finally:
        _stop(worker, thread)
    wait_until(lambda: not redis_client.exists(key), timeout=10)  # stopped: not alive at once
    assert redis_client.hget(f"{key}:stats", "processed") == "3"  # its figures stay readable


def test_workers_and_status_show_redis(
    make_api: MakeApi, prefix: str, redis_client: Any, tmp_path: Path
) -> None:
    api = make_api(REDIS_URL=REDIS_URL, BOTYARD_REDIS_PREFIX=prefix)
    runtime = api.app.state.runtime  # type: ignore[attr-defined]
    for worker_id in ("w-alive", "w-gone"):
        runtime.store.workers.register(
            worker_id, hostname="h", mode="pull", pid=1, automations=["accept.quick"],
            queues=["default"], capacity=2, version="x",
        )  # fmt: skip
    runtime.events.heartbeat(
        Heartbeat("w-alive", {"status": "online", "active": "0"}, {"processed": 5, "failed": 1})
    )
    assert runtime.events.flush()
    admin = token(api, "admin", "admin-password")
    workers = {w["id"]: w for w in api.get("/workers", headers=admin).json()}
    alive = workers["w-alive"]["redis"]
    assert alive["alive"] is True and 0 < alive["ttl"] <= 30
    assert alive["stats"] == {"processed": 5, "failed": 1}
    assert workers["w-gone"]["redis"] == {"alive": False, "ttl": None, "stats": {}}

    submitted = api.post(
        "/jobs", json={"automation": "accept.quick", "payload": {"n": 1}}, headers=admin
    )
    assert submitted.status_code == 201, submitted.text

    redis = api.get("/status").json()["redis"]
    assert redis["configured"] is True and redis["ok"] is True
    assert redis["latency_ms"] >= 0 and redis["url"] == REDIS_URL
    # Dispatch through Redis lists: the job waits there for a worker to take it.
    assert redis["dispatch"] is True and redis["entries"] == {"default": 1}
    assert redis["taken"] == 0
    ready = api.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"


def test_status_masks_the_password_and_redis_down_only_degrades(make_api: MakeApi) -> None:
    url = f"redis://:secret-pw@127.0.0.1:{_closed_port()}/0"
    api = make_api(REDIS_URL=url)
    redis = api.get("/status").json()["redis"]
    assert redis["configured"] is True and redis["ok"] is False
    assert "secret-pw" not in redis["url"] and "***" in redis["url"]
    ready = api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"].startswith("unavailable")
    admin = token(api, "admin", "admin-password")
    api.app.state.runtime.store.workers.register(  # type: ignore[attr-defined]
        "w-1", hostname="h", mode="pull", pid=1, automations=[], queues=["default"],
        capacity=1, version="x",
    )  # fmt: skip
    answer = api.get("/workers", headers=admin)
    assert answer.status_code == 200 and "redis" not in answer.json()[0]
    # A submit still works: the job is stored, and workers are woken through the store's bus.
    submitted = api.post(
        "/jobs", json={"automation": "accept.quick", "payload": {"n": 1}}, headers=admin
    )
    assert submitted.status_code == 201, submitted.text
    assert api.get(f"/jobs/{submitted.json()['id']}", headers=admin).json()["status"] == "queued"


def test_without_redis_nothing_changes(make_api: MakeApi) -> None:
    api = make_api(REDIS_URL=None, VALKEY_HOST=None)
    assert api.get("/status").json()["redis"] == {"configured": False}
    assert "redis" not in api.get("/health/ready").json()["checks"]
    runtime = api.app.state.runtime  # type: ignore[attr-defined]
    assert runtime.redis is None and runtime.events.enabled is False
    runtime.store.workers.register(
        "w-1", hostname="h", mode="pull", pid=1, automations=[], queues=["default"],
        capacity=1, version="x",
    )  # fmt: skip
    admin = token(api, "admin", "admin-password")
    assert "redis" not in api.get("/workers", headers=admin).json()[0]
