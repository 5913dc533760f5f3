"""Job statuses and the rules that move a job between them — the one place they live."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    NEEDS_REVIEW = "needs_review"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

#: Every allowed move. The store writes each one as a single statement guarded by the "from" side.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.QUEUED,  # a retry, or a recovered lease
            JobStatus.NEEDS_REVIEW,
            JobStatus.CANCELLED,
        }
    ),
    JobStatus.NEEDS_REVIEW: frozenset({JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),  # a person retries it
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

#: Where a person may act from.
CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
RETRYABLE_BY_PERSON = frozenset({JobStatus.FAILED, JobStatus.NEEDS_REVIEW})
RESOLVABLE = frozenset({JobStatus.NEEDS_REVIEW})


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses a job may be in for a move to ``target``."""
    return frozenset(src for src, targets in TRANSITIONS.items() if target in targets)


class Outcome(enum.StrEnum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"
    BUSINESS_ERROR = "business_error"  # the automation said no: never retried
    ERROR = "error"  # an exception: retried per policy
    TIMEOUT = "timeout"
    CRASHED = "crashed"  # the child process died
    LEASE_EXPIRED = "lease_expired"  # the worker vanished
    CANCELLED = "cancelled"
    RELEASED = "released"  # the worker shut down before the job could finish


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a job goes after an attempt ends, and when it may run again."""

    status: JobStatus
    retry_delay: float = 0.0


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    idempotent: bool,
    side_effect_started: bool,
    backoff_base: float = 1.0,
) -> Decision:
    """Decide where a job goes after attempt number ``attempt`` ended with ``outcome``.

    A job that may have half-happened (it entered ``ctx.side_effect`` and is not idempotent) is
    never run again silently: it goes to ``needs_review``.
    """
    if outcome is Outcome.SUCCEEDED:
        return Decision(JobStatus.SUCCEEDED)
    if outcome is Outcome.CANCELLED:
        return Decision(JobStatus.CANCELLED)
    if outcome is Outcome.BUSINESS_ERROR:
        return Decision(JobStatus.FAILED)
    unsafe = side_effect_started and not idempotent
    if unsafe:
        return Decision(JobStatus.NEEDS_REVIEW)
    if outcome is Outcome.RELEASED:
        # The worker gave the job back before finishing: not the job's fault, no attempt spent.
        return Decision(JobStatus.QUEUED)
    if attempt >= max_attempts:
        return Decision(JobStatus.FAILED)
    if outcome is Outcome.LEASE_EXPIRED:
        return Decision(JobStatus.QUEUED)
    return Decision(JobStatus.QUEUED, backoff_delay(attempt, base=backoff_base))
