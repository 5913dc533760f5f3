"""Redis dispatch for a pull worker: take job entries with ``BLMOVE``, claim, acknowledge.

One thread per queue waits for room in the worker, then blocks on the queue's Redis list. The
entries it takes sit in the worker's processing list until the store's claim has committed;
then they are acknowledged. Entries it cannot use go back to the front of their queue (no room
after all, or the store failed); entries whose jobs it could not claim, while those jobs are
still queued (another automation, a full concurrency key), wake the queue's other workers on
the bus. Redis being away only slows things down: the thread retries with a back-off, and the
worker's bus wake-ups and fallback poll carry on without it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from botyard.bus.redis_lists import RedisJobLists, Taken
from botyard.log_throttle import LogThrottle
from botyard.store.records import ClaimedJob

log = logging.getLogger("botyard.worker")

_BLOCK_SECONDS = 0.5  # how long one BLMOVE waits; bounds how late a stop is noticed


class RedisFeed:
    def __init__(
        self,
        lists: RedisJobLists,
        worker_id: str,
        queues: list[str],
        *,
        room: Callable[[float], int],
        claim: Callable[[str, int], tuple[list[ClaimedJob], int]],
        still_queued: Callable[[list[int]], set[int]],
        wake: Callable[[str], None],
        stopping: threading.Event,
    ) -> None:
        self.lists = lists
        self.worker_id = worker_id
        self.queues = queues
        self._room = room
        self._claim = claim
        self._still_queued = still_queued
        self._wake = wake
        self._stopping = stopping
        self._warn = LogThrottle(log)
        self._threads = [
            threading.Thread(
                target=self._serve, args=(queue,), name=f"botyard-feed-{queue}", daemon=True
            )
            for queue in queues
        ]

    def start(self) -> None:
        try:
            returned = self.lists.give_back_leftovers(self.worker_id, self.queues)
        except Exception as exc:  # Redis away: the reconciler does it later
            self._warn(f"could not look for entries an earlier run left: {exc}")
        else:
            if returned:
                log.warning("gave back %d Redis entries an earlier run left taken", returned)
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _serve(self, queue: str) -> None:
        failures = 0
        last: Taken | None = None  # acknowledged by the next take, or when the thread ends
        while not self._stopping.is_set():
            most = self._room(_BLOCK_SECONDS)
            if most <= 0:
                continue
            try:
                taken = self.lists.take(queue, self.worker_id, most, _BLOCK_SECONDS)
            except Exception as exc:
                failures += 1
                if type(exc).__name__ in (
                    "ResponseError",
                    "AuthenticationError",
                    "NoPermissionError",
                ):
                    # Not an outage: Redis refuses us (a wrong password, or a Redis before 6.2
                    # without LMOVE/BLMOVE). Jobs reach this worker only at its fallback poll.
                    self._warn(f"Redis refuses dispatch commands: {exc}", level=logging.ERROR)
                else:
                    self._warn(f"Redis dispatch unavailable ({exc}); retrying")
                self._stopping.wait(min(5.0, 0.25 * 2**failures))
                continue
            failures, last = 0, None
            if taken:
                try:
                    last = self._use(queue, taken)
                except Exception:  # never let one bad round end the queue's thread
                    log.exception("Redis dispatch round failed; entries left for the reconciler")
                    self._stopping.wait(1.0)
        if last is not None:
            self._settle(last, keep=len(last))

    def _use(self, queue: str, taken: Taken) -> Taken | None:
        """Claim for ``taken``; returns it if it awaits acknowledgement by the next take."""
        if self._stopping.is_set():
            self._settle(taken, keep=0)
            return None
        try:
            claimed, asked = self._claim(queue, len(taken))
        except Exception:
            log.exception("claim failed; entries given back")
            self._settle(taken, keep=0)
            self._stopping.wait(1.0)
            return None
        if len(claimed) < asked:
            self._wake_others(queue, Taken(queue, taken.raw[:asked]), claimed)
        if asked < len(taken):  # less room than entries after all: give the rest back now
            self._settle(taken, keep=asked)
            return None
        return taken

    def _settle(self, taken: Taken, keep: int) -> None:
        """Acknowledge the first ``keep`` entries, give the others back."""
        try:
            self.lists.settle(self.worker_id, taken, keep)
        except Exception as exc:  # given back at our next start, or by the reconciler
            self._warn(f"could not acknowledge Redis entries: {exc}")

    def _wake_others(self, queue: str, used: Taken, claimed: list[ClaimedJob]) -> None:
        """Jobs announced to us that we did not claim: if they still wait, others may run them."""
        mine = {job.id for job in claimed}
        missed = [job_id for job_id in used.job_ids if job_id not in mine]
        try:
            waiting = self._still_queued(missed) if missed else set()
        except Exception:
            waiting = set(missed)  # unsure: a wake-up too many costs one empty claim
        if waiting:
            self._wake(queue)
