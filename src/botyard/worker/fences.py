"""Lease fences: until when each held attempt's process tree may run without a renewal.

A lease lasts ``lease_ttl`` from the moment its claim or renewal statement was sent, at the
least. The worker tells the job's supervisor to kill the attempt's tree a safety margin before
that (``WorkerConfig.fence_margin``) unless a renewal extends it, so that when the store lets
another worker recover the job, the old attempt is surely dead: a stopped worker, or one whose
store calls hang, cannot keep running a job it no longer holds. Times are ``time.monotonic()``,
which on Linux is one clock for every process of the host.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Fences:
    def __init__(self, lease_ttl: float, margin: float) -> None:
        self._after = lease_ttl - margin
        self._kill_at: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()

    def leased(self, attempts: Iterable[tuple[int, int]], sent_at: float) -> None:
        """Claimed with a statement sent at ``sent_at``."""
        with self._lock:
            for pair in attempts:
                self._kill_at[pair] = sent_at + self._after

    def renewed(self, kept: set[tuple[int, int]], sent_at: float) -> float:
        """Renewed with a statement sent at ``sent_at``; returns their new kill time."""
        kill_at = sent_at + self._after
        with self._lock:
            for pair in kept & self._kill_at.keys():
                self._kill_at[pair] = max(self._kill_at[pair], kill_at)
        return kill_at

    def kill_at(self, job_id: int, attempt: int) -> float | None:
        with self._lock:
            return self._kill_at.get((job_id, attempt))

    def forget(self, job_id: int, attempt: int) -> None:
        with self._lock:
            self._kill_at.pop((job_id, attempt), None)
