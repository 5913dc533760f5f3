"""Job status events on Redis pub/sub and worker heartbeat keys, sent from a thread of its own.

Channels: ``<prefix>:events:jobs`` (every job) and ``<prefix>:events:jobs:<queue>``; keys:
``<prefix>:worker:<id>`` (a hash with a TTL, renewed at each heartbeat, deleted when the worker
stops) and ``<prefix>:worker:<id>:stats``. The prefix is ``botyard`` unless
``BOTYARD_REDIS_PREFIX`` says otherwise.

Callers only put items on a bounded in-memory queue: a slow or absent Redis never holds up a
claim or a finish. What cannot be sent is dropped (the store keeps the truth) and the failure is
logged at most once a minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from botyard.events import DEFAULT_PREFIX, Heartbeat, JobEvent, jobs_channel, worker_key
from botyard.log_throttle import LogThrottle

log = logging.getLogger("botyard.events")

_BATCH = 500
STATS_TTL = 86_400  # a stopped worker's last figures stay readable for a day


def connect(url: str, *, timeout: float = 2.0) -> Any:
    """A redis-py client (decoded strings) that gives up quickly when the server is away."""
    import redis

    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


class RedisEventPublisher:
    """Fire-and-forget: ``publish`` and ``heartbeat`` return at once."""

    enabled = True

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        heartbeat_ttl: int = 30,
        max_pending: int = 10_000,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.heartbeat_ttl = heartbeat_ttl
        self.dropped = 0
        self._queue: queue.Queue[JobEvent | Heartbeat | threading.Event | None] = queue.Queue(
            max_pending
        )
        self._warn = LogThrottle(log)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="botyard-events", daemon=True)
        self._thread.start()

    def publish(self, event: JobEvent) -> None:
        self._put(event)

    def heartbeat(self, beat: Heartbeat) -> None:
        self._put(beat)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far was sent (or given up on); False on timeout."""
        if self._closed:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=2.0)
        self._thread.join(timeout=5.0)
        with contextlib.suppress(Exception):
            self.client.close()

    def _put(self, item: JobEvent | Heartbeat) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self._warn("event queue full (Redis too slow or away): dropping events")

    def _run(self) -> None:
        try:  # connect now: the first event should not pay for it (and arrive after later ones)
            self.client.ping()
        except Exception as exc:
            self._warn(f"Redis unavailable: {exc}")
        while True:
            item = self._queue.get()
            batch: list[JobEvent | Heartbeat] = []
            markers: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._send(batch)
            for marker in markers:
                marker.set()
            if stop:
                return

    def _send(self, batch: Sequence[JobEvent | Heartbeat]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for item in batch:
                if isinstance(item, JobEvent):
                    message = item.to_json()
                    pipe.publish(jobs_channel(self.prefix), message)
                    pipe.publish(jobs_channel(self.prefix, item.queue), message)
                else:
                    self._queue_heartbeat(pipe, item)
            pipe.execute()
        except Exception as exc:
            self.dropped += len(batch)
            self._warn(f"Redis unavailable, {len(batch)} events dropped: {exc}")

    def _queue_heartbeat(self, pipe: Any, beat: Heartbeat) -> None:
        key = worker_key(beat.worker_id, self.prefix)
        if beat.fields.get("status") == "offline":
            pipe.delete(key)  # it stopped: not alive from now on, without waiting for the TTL
        else:
            pipe.hset(key, mapping=beat.fields)
            pipe.expire(key, self.heartbeat_ttl)
        if beat.stats:
            pipe.hset(f"{key}:stats", mapping=beat.stats)
            pipe.expire(f"{key}:stats", STATS_TTL)


def read_workers(
    client: Any, worker_ids: Sequence[str], prefix: str = DEFAULT_PREFIX
) -> dict[str, dict[str, Any]]:
    """``{id: {"alive", "ttl", "stats"}}`` for every worker, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for worker_id in worker_ids:
        key = worker_key(worker_id, prefix)
        pipe.exists(key)
        pipe.ttl(key)
        pipe.hgetall(f"{key}:stats")
    replies = pipe.execute()
    out: dict[str, dict[str, Any]] = {}
    for i, worker_id in enumerate(worker_ids):
        exists, ttl, stats = replies[3 * i : 3 * i + 3]
        out[worker_id] = {
            "alive": bool(exists),
            "ttl": ttl if ttl is not None and ttl >= 0 else None,
            "stats": {name: int(value) for name, value in (stats or {}).items()},
        }
    return out


def probe(client: Any) -> tuple[bool, float | None]:
    """Whether Redis answers a PING, and how fast (milliseconds)."""
    started = time.perf_counter()
    try:
        client.ping()
    except Exception:
        return False, None
    return True, round((time.perf_counter() - started) * 1000, 3)


def follow(
    client: Any,
    *,
    prefix: str = DEFAULT_PREFIX,
    queue_name: str | None = None,
    job_id: int | None = None,
    timeout: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Job status events as they arrive (decoded), optionally of one queue or one job.

    With ``timeout``, stops after that many seconds without a message.
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(jobs_channel(prefix, queue_name))
    last = time.monotonic()
    try:
        while True:
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                if timeout is not None and time.monotonic() - last >= timeout:
                    return
                continue
            last = time.monotonic()
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            if not isinstance(event, dict):
                continue
            if job_id is not None and event.get("job_id") != job_id:
                continue
            yield event
    finally:
        pubsub.close()
