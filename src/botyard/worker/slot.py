"""A slot runs one job at a time on its own reusable child process."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botyard import attempt_credentials
from botyard.automations.pool import ChildProcess
from botyard.jobs import Outcome
from botyard.masking import Masker
from botyard.store.records import Activity, ClaimedJob, Completion
from botyard.worker.writer import StoreWriter

log = logging.getLogger("botyard.worker")


# Outcomes after which the child is kept for the next job: the job ended as it meant to, so
# what it started and left (its warm browser) is its own. After any other (an error, a lost
# lease, a cancel) the attempt may be retried, and nothing of it may outlive it.
_KEEPS_CHILD = frozenset({Outcome.SUCCEEDED, Outcome.BUSINESS_ERROR})


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Slot:
    def __init__(
        self,
        index: int,
        *,
        inbox: queue.SimpleQueue[ClaimedJob | None],
        writer: StoreWriter,
        modules: list[str],
        scripts: list[str],
        evidence_root: Path,
        max_attempts_cap: int | None,
        on_done: Callable[[Completion, Any], None],
        should_run: Callable[[ClaimedJob], bool],
        on_free: Callable[[ClaimedJob, float | None], None],
        fence_at: Callable[[int, int], float | None] = lambda _job_id, _attempt: None,
        worker_token: str | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.index = index
        self.inbox = inbox
        self.writer = writer
        self.modules = modules
        self.scripts = scripts
        self.evidence_root = evidence_root
        self.max_attempts_cap = max_attempts_cap
        self.on_done = on_done
        self.should_run = should_run
        self.on_free = on_free
        self.fence_at = fence_at  # when the job's tree is killed unless its lease is renewed
        self.worker_token = worker_token
        # Botyard's own secrets, which a job's process is not given: should one reach a job's
        # output anyway, it is masked here before it is stored.
        self.masker = masker or Masker()
        self.child: ChildProcess | None = None
        self.job: ClaimedJob | None = None
        self._abort: Outcome | None = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name=f"botyard-slot-{index}", daemon=True)

    # -- control from other threads -----------------------------------------

    def start(self) -> None:
        self.thread.start()

    def prestart(self) -> None:
        """Start the child ahead of the first job (imports take a moment)."""
        if self.child is None:
            self.child = ChildProcess(self.modules, self.scripts)

    def running(self) -> tuple[int, int] | None:
        job = self.job
        return (job.id, job.attempt) if job is not None else None

    def extend(self, kept: set[tuple[int, int]], kill_at: float) -> None:
        """A renewal kept these attempts' leases: the running one may run until ``kill_at``."""
        with self._lock:
            job, child = self.job, self.child
            if job is not None and child is not None and (job.id, job.attempt) in kept:
                child.lease(job.id, job.attempt, kill_at)

    def abort(self, job_id: int, reason: Outcome, *, attempt: int | None = None) -> bool:
        """Stop the job (that attempt of it, if given) if this slot still runs it: its child
        and the child's tree are killed."""
        with self._lock:
            job = self.job
            if job is None or job.id != job_id or self._abort is not None:
                return False
            if attempt is not None and job.attempt != attempt:
                return False
            self._abort = reason
            # Killed under the lock, so the slot cannot hand this child its next job meanwhile.
            if self.child is not None:
                self.child.kill()
        return True

    # -- the slot's own thread ----------------------------------------------

    def _loop(self) -> None:
        while True:
            job = self.inbox.get()
            if job is None:
                break
            if not self.should_run(job):  # it lost its lease while it waited for this slot
                self.on_free(job, None)
                continue
            started = time.monotonic()
            completion: Completion | None = None
            try:
                completion = self._run(job)
            except Exception:
                log.exception("slot %d failed on job %s", self.index, job.id)
            # Freed before its finish is queued: from here on no lease renewal counts this
            # attempt as held, so one that the store has closed is never taken for lost.
            self.on_free(job, time.monotonic() - started)
            if completion is not None:
                self.writer.finish(completion, self.on_done)
        if self.child is not None:
            self.child.close()
            self.child = None

    def _ensure_child(self) -> ChildProcess:
        if self.child is None or not self.child.alive():
            self.child = ChildProcess(self.modules, self.scripts)
        self.child.wait_ready()
        return self.child

    def _run(self, job: ClaimedJob) -> Completion:
        with self._lock:
            self.job, self._abort = job, None
        try:
            outcome, result, error, side_effect = self._execute(job)
        finally:
            with self._lock:
                self.job = None
                if self.child is not None:
                    self.child.idle()
        max_attempts = job.max_attempts
        if self.max_attempts_cap is not None:
            max_attempts = min(max_attempts, self.max_attempts_cap)
        return Completion(
            job_id=job.id,
            attempt=job.attempt,
            outcome=outcome,
            max_attempts=max_attempts,
            idempotent=job.idempotent,
            attempt_base=job.attempt_base,
            side_effect=side_effect,
            result=result,
            error=error,
        )

    def _execute(self, job: ClaimedJob) -> tuple[Outcome, Any, dict[str, Any] | None, str | None]:
        try:
            child = self._ensure_child()
        except Exception as exc:
            self.child = None
            return Outcome.ERROR, None, {"type": "WorkerError", "message": str(exc)}, None
        evidence_dir = self.evidence_root / str(job.id) / str(job.attempt)
        deadline = time.monotonic() + job.timeout
        side_effect: str | None = None
        kill_at = self.fence_at(job.id, job.attempt)
        if kill_at is not None:
            with self._lock:
                child.lease(job.id, job.attempt, kill_at)
        try:
            child.send(
                (
                    "run",
                    {
                        "id": job.id,
                        "attempt": job.attempt,
                        "automation": job.automation,
                        "payload": job.payload,
                        "evidence_dir": str(evidence_dir),
                        "credential": self._credential(job),
                    },
                )
            )
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    child.kill()
                    self.child = None
                    message = f"timed out after {job.timeout:g}s; process tree killed"
                    return (
                        Outcome.TIMEOUT,
                        None,
                        {"type": "Timeout", "message": message},
                        side_effect,
                    )
                if not child.poll(remaining):
                    continue
                message = child.recv()
                kind = message[0]
                if kind == "done":
                    _, outcome, result, error, _started = message
                    if Outcome(outcome) not in _KEEPS_CHILD:
                        self._drop_child(child)
                    masked = self.masker.mask_json
                    return Outcome(outcome), masked(result), masked(error), side_effect
                if kind == "side_effect":
                    ok = self.writer.side_effect(job.id, job.attempt, message[1])
                    if ok and side_effect is None:
                        side_effect = message[1]
                    child.send(("reply", ok))
                else:
                    self.writer.activity(self._activity(job, message))
        except (EOFError, OSError):
            self.child = None
            if self._abort is not None:  # we killed it: cancelled, lease lost or released
                reason = self._abort
                error = {"type": reason.value, "message": f"attempt stopped: {reason.value}"}
                return reason, None, error, side_effect
            description = child.exit_description()
            fenced = child.fenced()
            child.kill()
            if fenced:
                message = "the job's process tree was killed: its lease was not renewed in time"
                error = {"type": Outcome.LEASE_EXPIRED.value, "message": message}
                return Outcome.LEASE_EXPIRED, None, error, side_effect
            error = {"type": "WorkerCrash", "message": f"the job's process {description}"}
            return Outcome.CRASHED, None, error, side_effect

    def _drop_child(self, child: ChildProcess) -> None:
        """Kill the child with everything its attempt started, before the attempt's finish is
        written: a retry (here or on another worker) must never run beside what is left of it.
        The whole tree goes, its warm browser too: the next job gets a fresh child."""
        with self._lock:
            child.kill()
            if self.child is child:
                self.child = None

    def _credential(self, job: ClaimedJob) -> str | None:
        """The attempt's own credential for the orchestrator; none without a worker token."""
        if not self.worker_token:
            return None
        return attempt_credentials.mint(self.worker_token, job.id, job.attempt)

    def _activity(self, job: ClaimedJob, message: tuple[Any, ...]) -> Activity:
        kind = message[0]
        if kind == "log":
            _, level, text, ts = message
            data = {"level": level, "message": self.masker.mask(text)}
        elif kind == "step_start":
            _, name, ts = message
            data = {"name": name}
        elif kind == "step_end":
            _, name, status, ts = message
            data = {"name": name, "status": status}
        elif kind == "browser":
            _, data, ts = message
        else:  # evidence
            _, name, path, content_type, size, step, ts = message
            data = {
                "name": name,
                "path": path,
                "content_type": content_type,
                "size": size,
                "step": step,
            }
        return Activity(job.id, job.attempt, _at(ts), kind, data)
