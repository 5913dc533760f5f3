"""Dispatch through Redis lists: one entry per runnable job, taken with ``BLMOVE``.

Keys (the prefix is ``botyard`` unless ``BOTYARD_REDIS_PREFIX`` says otherwise):

- ``<prefix>:queue:<queue>`` — entries of runnable jobs. New entries go in on the left
  (``LPUSH``); workers take from the right, so the oldest entry goes first.
- ``<prefix>:processing:<worker id>:<queue>`` — what one worker has taken from one queue and
  not yet acknowledged. ``BLMOVE`` (or ``LMOVE``, for a backlog) puts an entry there in the
  same step that takes it off its queue, so a worker that dies in between leaves the entry
  where the reconciler finds it. One thread of one worker owns the list: it takes, claims, and
  only then takes again, so the next take acknowledges (deletes) what the last one brought.

An entry is ``{"job_id":12,"queue":"default"}``. It says that a job of that queue can run; the
store decides which one a worker gets. A worker that took n entries claims up to n jobs with the
store's claim (priority first, then age, concurrency keys respected), then acknowledges the
entries. Exactly-once comes from the claim, never from Redis: an entry too many costs
one empty claim, an entry too few a wait for the reconciler (``botyard.orchestrator.reconciler``)
or the worker's fallback poll.

Announcing is synchronous (the submit returns once Redis has the entry) but never waits on a
Redis that failed: for ``cooldown`` seconds after a failure :meth:`RedisJobLists.announce` gives
up at once, and the caller wakes workers through the bus instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botyard.events import DEFAULT_PREFIX
from botyard.log_throttle import LogThrottle

log = logging.getLogger("botyard.dispatch")


def queue_key(queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:queue:{queue}"


def processing_key(worker_id: str, queue: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}:processing:{worker_id}:{queue}"


# Acknowledge what the last take brought (its jobs are claimed by now: the worker takes again
# only after its claim committed), then LMOVE up to ARGV[1] entries from KEYS[1] to KEYS[2].
# One round trip per batch, whether there is a backlog or not.
_TAKE_SCRIPT = """
redis.call('DEL', KEYS[2])
local taken = {}
for _ = 1, tonumber(ARGV[1]) do
  local entry = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not entry then break end
  taken[#taken + 1] = entry
end
return taken
"""


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
    """Entries a worker moved to its processing list of ``queue``, as Redis holds them."""

    queue: str
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
    taken: dict[tuple[str, str], list[Entry]]  # (worker id, queue) -> entries, newest first


def _decode_all(raws: Iterable[str]) -> list[Entry]:
    return [entry for raw in raws if (entry := Entry.decode(raw)) is not None]


class RedisJobLists:
    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX, cooldown: float = 5.0) -> None:
        self.client = client
        self.prefix = prefix
        self.cooldown = cooldown
        self._down_until = 0.0
        self._warn = LogThrottle(log)
        self._take_script = client.register_script(_TAKE_SCRIPT)

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
        """Take up to ``most`` entries of ``queue``, waiting up to ``timeout`` seconds for one.

        Acknowledges what the previous take brought: call it again only once the store has
        claimed for those (or :meth:`settle` them first). Each entry moves to the worker's
        processing list in the step that takes it. A backlog
        is taken ``most`` at a time in one round trip; on an empty queue the worker blocks in
        ``BLMOVE`` and gets the next entry the moment it is pushed. Raises redis-py's errors
        when Redis is away.
        """
        source = queue_key(queue, self.prefix)
        mine = processing_key(worker_id, queue, self.prefix)
        taken = list(self._take_script(keys=[source, mine], args=[most]))
        if not taken:
            first = self.client.blmove(source, mine, timeout, "RIGHT", "LEFT")
            taken = [] if first is None else [first]
        return Taken(queue, taken)

    def settle(self, worker_id: str, taken: Taken, used: int) -> None:
        """The store has claimed for the first ``used`` entries: drop them; the others go back
        to the front of the queue, in the order they were taken."""
        mine = processing_key(worker_id, taken.queue, self.prefix)
        unused = taken.raw[used:]
        if not unused:
            self.client.delete(mine)
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(queue_key(taken.queue, self.prefix), *reversed(unused))
        pipe.delete(mine)
        pipe.execute()

    def give_back_leftovers(self, worker_id: str, queues: Sequence[str]) -> int:
        """What an earlier run under the same worker id took and never settled: back to the
        front of its queue (called at start, before taking anything)."""
        returned = 0
        for queue in queues:
            mine = processing_key(worker_id, queue, self.prefix)
            raws = self.client.lrange(mine, 0, -1)
            if raws:
                self.settle(worker_id, Taken(queue, list(reversed(raws))), used=0)
                returned += len(raws)
        return returned

    # -- what Redis holds (the reconciler) ---------------------------------------------

    def holdings(self) -> Holdings:
        """Every list read whole, in one round trip after the key scan."""
        queues, processing = self._list_keys()
        pipe = self.client.pipeline(transaction=False)
        for key in (*queues, *processing):
            pipe.lrange(key, 0, -1)
        contents = iter(pipe.execute() if queues or processing else [])
        queued = {queue: _decode_all(next(contents)) for queue in queues.values()}
        taken: dict[tuple[str, str], list[Entry]] = {}
        for suffix in processing.values():
            entries = _decode_all(next(contents))
            if entries:  # "<worker id>:<queue>", and the entries say which queue
                queue = entries[0].queue
                taken[(suffix.removesuffix(f":{queue}"), queue)] = entries
        return Holdings(queued, taken)

    def reclaim(self, holdings: Holdings, alive: Callable[[str], bool]) -> int:
        """Give back what workers that are gone took and never acknowledged."""
        returned = 0
        for (worker_id, queue), entries in holdings.taken.items():
            if not alive(worker_id):
                raws = [entry.encode() for entry in reversed(entries)]  # oldest taken first
                self.settle(worker_id, Taken(queue, raws), used=0)
                log.warning(
                    "gave back %d entries that %s took and never settled", len(raws), worker_id
                )
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

    def depths(self) -> tuple[dict[str, int], int]:
        """Entries per queue, and how many are taken and not acknowledged: lengths only, in
        one round trip after the key scan (cheap enough for ``/status``)."""
        queues, processing = self._list_keys()
        pipe = self.client.pipeline(transaction=False)
        for key in (*queues, *processing):
            pipe.llen(key)
        lengths = iter(pipe.execute() if queues or processing else [])
        waiting = {queue: int(next(lengths)) for queue in queues.values()}
        return waiting, sum(int(n) for n in lengths)

    def _list_keys(self) -> tuple[dict[str, str], dict[str, str]]:
        """The queue lists (key -> queue) and the processing lists (key -> "<worker>:<queue>")."""
        queue_start, processing_start = f"{self.prefix}:queue:", f"{self.prefix}:processing:"
        queues: dict[str, str] = {}
        processing: dict[str, str] = {}
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            if key.startswith(queue_start):
                queues[key] = key[len(queue_start) :]
            elif key.startswith(processing_start):
                processing[key] = key[len(processing_start) :]
        return queues, processing

    def close(self) -> None:
        self.client.close()

    def _failed(self, message: str) -> None:
        self._down_until = time.monotonic() + self.cooldown
        self._warn(f"{message}; waking workers through the bus for {self.cooldown:.0f} s")
