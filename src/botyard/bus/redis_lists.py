"""Dispatch through Redis lists: one entry per runnable job, taken with ``BLMOVE``.

Keys (the prefix is ``botyard`` unless ``BOTYARD_REDIS_PREFIX`` says otherwise):

- ``<prefix>:queue:<queue>`` — entries of runnable jobs. New entries go in on the left
  (``LPUSH``); workers take from the right, so the oldest entry goes first.
- ``<prefix>:processing:<worker id>`` — what one worker has taken and not yet acknowledged.
  ``BLMOVE`` puts an entry there in the same step that takes it off its queue, so a worker that
  dies in between leaves the entry where the reconciler finds it.

An entry is ``{"job_id":12,"queue":"default"}``. It says that a job of that queue can run; the
store decides which one a worker gets. A worker that took n entries claims up to n jobs with the
store's claim (priority first, then age, concurrency keys respected), then acknowledges the
entries (``LREM``). Exactly-once comes from the claim, never from Redis: an entry too many costs
one empty claim, an entry too few a wait for the reconciler (``botyard.orchestrator.reconciler``)
or the worker's fallback poll.

Announcing is synchronous (the submit returns once Redis has the entry) but never waits on a
Redis that failed: for ``cooldown`` seconds after a failure :meth:`RedisJobLists.announce` gives
up at once, and the caller wakes workers through the bus instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botyard.events import DEFAULT_PREFIX

log = logging.getLogger("botyard.dispatch")

_WARN_EVERY = 60.0


def queue_key(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:queue:{queue}"


def processing_key(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:processing:{worker_id}"


@dataclass(frozen=True, slots=True)
class Entry:
    job_id: int
    queue: str

    def encode(self) -> str:
        # Always the same bytes for the same entry: LREM matches on them.
        return json.dumps({"job_id": self.job_id, "queue": self.queue}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> Entry | None:
        try:
            data = json.loads(raw)
            return cls(int(data["job_id"]), str(data["queue"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class Taken:
    """Entries a worker moved to its processing list: ``raw`` exactly as Redis holds them."""

    raw: list[str]

    @property
    def job_ids(self) -> list[int]:
        return [entry.job_id for raw in self.raw if (entry := Entry.decode(raw)) is not None]

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True, slots=True)
class Holdings:
    """Every entry Redis holds: on queues, and taken by each worker."""

    queued: dict[str, list[Entry]]  # queue -> entries
    taken: dict[str, list[str]]  # worker id -> raw entries

    def job_ids(self) -> set[int]:
        ids = {entry.job_id for entries in self.queued.values() for entry in entries}
        for raws in self.taken.values():
            ids.update(e.job_id for raw in raws if (e := Entry.decode(raw)) is not None)
        return ids


class RedisJobLists:
    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX, cooldown: float = 5.0) -> None:
        self.client = client
        self.prefix = prefix
        self.cooldown = cooldown
        self._down_until = 0.0
        self._last_warning = -_WARN_EVERY
        self._lock = threading.Lock()

    # -- announcing ----------------------------------------------------------------

    def announce(self, queue: str, job_ids: Sequence[int]) -> bool:
        """Put one entry per job on its queue; False if Redis did not take them."""
        if not job_ids:
            return True
        if time.monotonic() < self._down_until:
            return False
        entries = [Entry(job_id, queue).encode() for job_id in job_ids]
        try:
            self.client.lpush(queue_key(queue, self.prefix), *entries)
        except Exception as exc:
            self._failed(f"Redis did not take {len(entries)} job entries: {exc}")
            return False
        return True

    def restore(self, entries: Iterable[Entry]) -> int:
        """Put entries back at the front of their queues, in the order given (first goes first)."""
        by_queue: dict[str, list[str]] = {}
        for entry in entries:
            by_queue.setdefault(entry.queue, []).append(entry.encode())
        if not by_queue:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for queue, raws in by_queue.items():
            # Taken from the right: the last one pushed on the right is taken first.
            pipe.rpush(queue_key(queue, self.prefix), *reversed(raws))
        pipe.execute()
        return sum(len(raws) for raws in by_queue.values())

    # -- taking (workers) ------------------------------------------------------------

    def take(self, queue: str, worker_id: str, most: int, timeout: float) -> Taken:
        """Wait up to ``timeout`` seconds for an entry of ``queue``, then take up to ``most``.

        Each entry moves to the worker's processing list in the step that takes it. Raises
        redis-py's errors when Redis is away.
        """
        source, mine = queue_key(queue, self.prefix), processing_key(worker_id, self.prefix)
        first = self.client.blmove(source, mine, timeout, "RIGHT", "LEFT")
        if first is None:
            return Taken([])
        taken = [first]
        if most > 1:
            pipe = self.client.pipeline(transaction=False)
            for _ in range(most - 1):
                pipe.lmove(source, mine, "RIGHT", "LEFT")
            taken.extend(raw for raw in pipe.execute() if raw is not None)
        return Taken(taken)

    def ack(self, worker_id: str, taken: Taken) -> None:
        """The store has what these entries announced: drop them from the processing list."""
        if not taken.raw:
            return
        mine = processing_key(worker_id, self.prefix)
        pipe = self.client.pipeline(transaction=False)
        for raw in taken.raw:
            pipe.lrem(mine, 1, raw)
        pipe.execute()

    def give_back(self, worker_id: str, taken: Taken) -> None:
        """Return entries a worker took and could not act on to the front of their queues."""
        entries = [entry for raw in taken.raw if (entry := Entry.decode(raw)) is not None]
        self.restore(entries)
        self.ack(worker_id, taken)

    # -- what Redis holds (the reconciler) ---------------------------------------------

    def holdings(self) -> Holdings:
        queued: dict[str, list[Entry]] = {}
        taken: dict[str, list[str]] = {}
        queues, workers = f"{self.prefix}:queue:", f"{self.prefix}:processing:"
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            if key.startswith(queues):
                raws = self.client.lrange(key, 0, -1)
                queued[key[len(queues) :]] = [
                    entry for raw in raws if (entry := Entry.decode(raw)) is not None
                ]
            elif key.startswith(workers):
                taken[key[len(workers) :]] = self.client.lrange(key, 0, -1)
        return Holdings(queued, taken)

    def reclaim(self, holdings: Holdings, alive: Callable[[str], bool]) -> int:
        """Give back what workers that are gone took and never acknowledged."""
        returned = 0
        for worker_id, raws in holdings.taken.items():
            if raws and not alive(worker_id):
                self.give_back(worker_id, Taken(list(reversed(raws))))  # oldest taken first
                log.warning("gave back %d entries taken by %s, which is gone", len(raws), worker_id)
                returned += len(raws)
        return returned

    def discard(self, entries: Iterable[Entry]) -> int:
        """Remove one occurrence of each entry from its queue."""
        pipe = self.client.pipeline(transaction=False)
        count = 0
        for entry in entries:
            pipe.lrem(queue_key(entry.queue, self.prefix), 1, entry.encode())
            count += 1
        if count:
            pipe.execute()
        return count

    def depth(self, queue: str) -> int:
        return int(self.client.llen(queue_key(queue, self.prefix)))

    def close(self) -> None:
        self.client.close()

    def _failed(self, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._down_until = now + self.cooldown
            if now - self._last_warning < _WARN_EVERY:
                return
            self._last_warning = now
        log.warning("%s; waking workers through the bus for %.0f s", message, self.cooldown)
