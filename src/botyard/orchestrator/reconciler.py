"""The reconciler: brings Redis's job entries back in line with the store.

Redis may lose entries (a restart without persistence, a ``FLUSHALL``, an announce that failed)
and may hold entries nobody needs (a job claimed through another job's entry, one cancelled
while queued). Neither loses a job, since workers claim from the store and poll it as a last
resort, but both cost time. Every few seconds the leader:

1. gives back what workers that are gone took and never acknowledged;
2. puts an entry at the front of its queue for every job the store can run now and Redis holds
   no entry for (only jobs runnable for at least ``settle`` seconds: a job just submitted may
   be on its way to Redis);
3. removes queue entries of jobs that are no longer queued.

Redis is read before the store, so an entry taken and acknowledged in between belongs to a job
the store already shows as claimed: nothing is announced twice by the reconciler itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from botyard.bus.redis_lists import Entry, RedisJobLists
from botyard.store.sql import SqlStore
from botyard.store.tables import utcnow


def reconcile(
    store: SqlStore,
    lists: RedisJobLists,
    *,
    alive: Callable[[str], bool],
    settle: float = 1.0,
) -> dict[str, int]:
    holdings = lists.holdings()
    reclaimed = lists.reclaim(holdings, alive)
    held = holdings.job_ids()
    runnable = store.runnable_jobs(utcnow() - timedelta(seconds=settle))
    republished = lists.restore(
        Entry(job_id, queue) for job_id, queue in runnable if job_id not in held
    )
    entries = [entry for queued in holdings.queued.values() for entry in queued]
    still_queued = store.queued_among([entry.job_id for entry in entries])
    discarded = lists.discard(entry for entry in entries if entry.job_id not in still_queued)
    return {"republished": republished, "reclaimed": reclaimed, "discarded": discarded}


def alive_workers(store: SqlStore, stale_after: float) -> Callable[[str], bool]:
    """Whether a worker id belongs to a worker that heartbeated within ``stale_after`` seconds."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    live = {
        worker.id
        for worker in store.workers.all()
        if worker.status != "offline" and worker.last_heartbeat >= cutoff
    }
    return live.__contains__
