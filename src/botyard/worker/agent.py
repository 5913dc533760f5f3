"""An agent: the pull worker's slots, leases and writer, fed by the orchestrator over HTTP.

The orchestrator claims a job in the agent's name (one atomic statement, as any claim) and
posts it to ``/execute``. The agent checks in the store that it holds that attempt, runs it in
a slot like a pull worker would, and from then on renews its lease, writes its logs, steps and
evidence, and closes it with the same fenced statements. A dead agent stops renewing, so its
jobs are recovered like a dead pull worker's; an agent that forgets a job (a restart under a
new id) answers ``not_found`` to ``poll_worker_job_status``, which ends the lease at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botyard.bus import Bus
from botyard.errors import BotyardError
from botyard.events import EventPublisher
from botyard.jobs import JobStatus
from botyard.store.records import ClaimedJob, Completion
from botyard.store.sql import SqlStore
from botyard.worker.config import WorkerConfig
from botyard.worker.daemon import PullWorker

_REMEMBERED = 1000  # finished jobs /status/{job_id} still knows


class AgentFull(BotyardError):
    """Every slot of this agent is taken"""


class NotHeld(BotyardError):
    """This agent does not hold that attempt"""


@dataclass(slots=True)
class JobState:
    job_id: int
    attempt: int
    status: str  # running | completed | failed
    start_time: datetime
    end_time: datetime | None = None
    result: Any = None


class AgentWorker(PullWorker):
    def __init__(
        self,
        store: SqlStore,
        bus: Bus,
        config: WorkerConfig,
        *,
        events: EventPublisher | None = None,
    ) -> None:
        config.mode = "agent"
        config.prefetch = 0  # the orchestrator decides what runs here, never more than fits
        super().__init__(store, bus, config, events=events)
        self.jobs: OrderedDict[int, JobState] = OrderedDict()
        self._jobs_lock = threading.Lock()

    def _main_loop(self) -> None:
        self._stopping.wait()  # nothing to claim: jobs arrive through accept()

    @property
    def active(self) -> int:
        with self._cond:
            return len(self._held)

    def accept(self, job_id: int, attempt: int) -> JobState:
        """Run the attempt the orchestrator claimed for this agent; raises when it cannot."""
        cfg = self.config
        with self._cond:
            if self._stopping.is_set() or len(self._held) >= cfg.concurrency:
                raise AgentFull(f"{len(self._held)} of {cfg.concurrency} slots busy")
            if job_id in self._held:
                raise NotHeld(f"job {job_id} is running here already")
        job = self.store.claimed_job(job_id, attempt, cfg.worker_id)
        if job is None:
            raise NotHeld(f"this agent does not hold job {job_id} attempt {attempt}")
        if job.automation not in cfg.automations:
            raise NotHeld(f"this agent does not run {job.automation}")
        # The lease runs from the orchestrator's claim, not from now: renewed before the job is
        # held, so that its fence is counted from a statement this agent sent. Otherwise a push
        # slower than the fence margin would have the tree killed after the lease had expired.
        renewed_at = time.monotonic()
        if not self.store.renew_leases(cfg.worker_id, [(job.id, job.attempt)], cfg.lease_ttl):
            raise NotHeld(f"this agent no longer holds job {job_id} attempt {attempt}")
        with self._cond:
            if len(self._held) >= cfg.concurrency:
                raise AgentFull(f"{len(self._held)} of {cfg.concurrency} slots busy")
            self._hold([job], leased_at=renewed_at)
        state = JobState(job.id, job.attempt, "running", datetime.now(UTC))
        with self._jobs_lock:
            self.jobs[job.id] = state
            self.jobs.move_to_end(job.id)
        self._inbox.put(job)
        return state

    def state(self, job_id: int) -> JobState | None:
        with self._jobs_lock:
            return self.jobs.get(job_id)

    def _on_free(self, job: ClaimedJob, seconds: float | None) -> None:
        super()._on_free(job, seconds)
        if seconds is None:  # dropped before it ran: it lost its lease while waiting
            error = {"error": "the job lost its lease before it started"}
            self._settle(job.id, job.attempt, "failed", error)

    def _on_done(self, completion: Completion, status: Any) -> None:
        super()._on_done(completion, status)
        if status is JobStatus.SUCCEEDED:
            self._settle(completion.job_id, completion.attempt, "completed", completion.result)
        else:
            error = completion.error or {}
            result = {
                "error": error.get("message", "the attempt did not succeed"),
                "error_type": error.get("type", completion.outcome.value),
                "outcome": completion.outcome.value,
                "job_status": status.value if status is not None else "lost",
            }
            self._settle(completion.job_id, completion.attempt, "failed", result)

    def _settle(self, job_id: int, attempt: int, status: str, result: Any) -> None:
        with self._jobs_lock:
            state = self.jobs.get(job_id)
            if state is None or state.attempt != attempt:  # a later attempt is here now
                return
            state.status, state.result, state.end_time = status, result, datetime.now(UTC)
            self.jobs.move_to_end(job_id)
            # Forget the oldest finished jobs; a running job is never forgotten, or the
            # orchestrator's poll would take it for lost.
            finished = [j for j, s in self.jobs.items() if s.status != "running"]
            for old in finished[: max(0, len(self.jobs) - _REMEMBERED)]:
                del self.jobs[old]
