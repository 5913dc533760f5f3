"""The reconciler: brings Redis's job entries back in line with the store.

Redis may lose entries (a restart without persistence, a ``FLUSHALL``, an announce that failed)
and may hold entries nobody needs (a job claimed through another job's entry, one cancelled
while queued). Neither loses a job, since workers claim from the store and poll it as a last
resort, but both cost time. Every few seconds the leader:

1. gives back what workers that are gone took and never acknowledged;
2. puts an entry at the front of its queue for every job the store can run now, that a live
   pull worker serves, and that no entry on a queue stands for (only jobs runnable for at least
   ``settle`` seconds: a job just submitted may be on its way to Redis). An entry in a live
   worker's processing list does not count: the claim it led to may have taken another job;
3. removes queue entries of jobs that are no longer queued (a bounded number per round).

Redis is read before the store, so an entry taken and acknowledged in between belongs to a job
the store already shows as claimed: nothing is announced twice by the reconciler itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice

from botyard.bus.redis_lists import Entry, RedisJobLists
from botyard.store.sql import SqlStore
from botyard.store.tables import utcnow
from botyard.store.workers import Workers

DISCARD_PER_ROUND = 1000  # each LREM walks a list: bound the work one round gives Redis


@dataclass(frozen=True)
class LiveWorkers:
    """The pull workers that heartbeated lately, and which (queue, automation) they serve."""

    ids: set[str] = field(default_factory=set)
    serves: set[tuple[str, str]] = field(default_factory=set)

    def alive(self, worker_id: str) -> bool:
        return worker_id in self.ids


def live_workers(store: SqlStore, stale_after: float) -> LiveWorkers:
    now = utcnow()
    live = [w for w in store.workers.all() if Workers.is_online(w, now, stale_after)]
    pull = [worker for worker in live if worker.mode == "pull"]
    return LiveWorkers(
        {worker.id for worker in live},
        {
            (queue, name)
            for worker in pull
            for queue in worker.queues
            for name in worker.automations
        },
    )


def reconcile(
    store: SqlStore, lists: RedisJobLists, live: LiveWorkers, *, settle: float = 1.0
) -> dict[str, int]:
    holdings = lists.holdings()
    reclaimed = lists.reclaim(holdings, live.alive)
    held = {entry.job_id for entries in holdings.queued.values() for entry in entries}
    for (worker_id, _queue), entries in holdings.taken.items():
        if not live.alive(worker_id):  # given back just now: on a queue again
            held.update(entry.job_id for entry in entries)
    runnable = store.runnable_jobs(utcnow() - timedelta(seconds=settle))
    republished = lists.restore(
        Entry(job_id, queue)
        for job_id, queue, automation in runnable
        if job_id not in held and (queue, automation) in live.serves
    )
    entries = [entry for queued in holdings.queued.values() for entry in queued]
    still_queued = store.queued_among([entry.job_id for entry in entries])
    stale = (entry for entry in entries if entry.job_id not in still_queued)
    discarded = lists.discard(islice(stale, DISCARD_PER_ROUND))
    return {"republished": republished, "reclaimed": reclaimed, "discarded": discarded}
