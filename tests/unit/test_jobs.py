"""The state machine: where a job goes after each kind of attempt ending."""

from __future__ import annotations

import random

import pytest

from botyard.jobs import (
    FINAL_STATUSES,
    TRANSITIONS,
    JobStatus,
    Outcome,
    backoff_delay,
    decide,
    sources_of,
)


def _decide(
    outcome: Outcome,
    *,
    attempt: int = 1,
    max_attempts: int = 3,
    idempotent: bool = False,
    side_effect: bool = False,
) -> tuple[JobStatus, float]:
    d = decide(
        outcome,
        attempt=attempt,
        max_attempts=max_attempts,
        idempotent=idempotent,
        side_effect_started=side_effect,
    )
    return d.status, d.retry_delay


def test_success_and_business_error_are_final() -> None:
    assert _decide(Outcome.SUCCEEDED)[0] is JobStatus.SUCCEEDED
    assert _decide(Outcome.BUSINESS_ERROR)[0] is JobStatus.FAILED
    assert _decide(Outcome.BUSINESS_ERROR, side_effect=True)[0] is JobStatus.FAILED


@pytest.mark.parametrize("outcome", [Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED])
def test_failures_retry_with_backoff_until_attempts_run_out(outcome: Outcome) -> None:
    status, delay = _decide(outcome, attempt=1)
    assert status is JobStatus.QUEUED and 0.5 <= delay <= 1.0
    status, delay = _decide(outcome, attempt=2)
    assert status is JobStatus.QUEUED and 1.0 <= delay <= 2.0
    assert _decide(outcome, attempt=3)[0] is JobStatus.FAILED


@pytest.mark.parametrize(
    "outcome",
    [Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED, Outcome.LEASE_EXPIRED, Outcome.RELEASED],
)
def test_a_half_done_side_effect_goes_to_review_unless_idempotent(outcome: Outcome) -> None:
    assert _decide(outcome, side_effect=True)[0] is JobStatus.NEEDS_REVIEW
    assert _decide(outcome, side_effect=True, attempt=3)[0] is JobStatus.NEEDS_REVIEW
    idempotent = _decide(outcome, side_effect=True, idempotent=True)[0]
    assert idempotent is JobStatus.QUEUED


def test_lost_lease_requeues_at_once_and_release_spends_no_attempt() -> None:
    assert _decide(Outcome.LEASE_EXPIRED) == (JobStatus.QUEUED, 0.0)
    assert _decide(Outcome.LEASE_EXPIRED, attempt=3)[0] is JobStatus.FAILED
    assert _decide(Outcome.RELEASED, attempt=3) == (JobStatus.QUEUED, 0.0)


def test_cancelled_stays_cancelled() -> None:
    assert _decide(Outcome.CANCELLED, side_effect=True)[0] is JobStatus.CANCELLED


def test_backoff_is_exponential_jittered_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 15):
        ceiling = min(300.0, 2 ** (attempt - 1))
        delay = backoff_delay(attempt, rng=rng)
        assert ceiling / 2 <= delay <= ceiling
    assert len({backoff_delay(5, rng=rng) for _ in range(20)}) > 1


def test_transition_table_is_consistent() -> None:
    for status in FINAL_STATUSES - {JobStatus.FAILED}:
        assert TRANSITIONS[status] == frozenset()
    assert sources_of(JobStatus.RUNNING) == {JobStatus.QUEUED}
    assert JobStatus.NEEDS_REVIEW in sources_of(JobStatus.SUCCEEDED)
    # every decision lands on a status reachable from running
    for outcome in Outcome:
        assert _decide(outcome)[0] in TRANSITIONS[JobStatus.RUNNING]
