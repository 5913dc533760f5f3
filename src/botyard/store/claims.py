"""The claim — one atomic statement per dialect — and the batched writes of running attempts.

Concurrency keys. A job may carry a key ("mfn:ops") and a limit: at most ``limit`` jobs with
that key are running at once, across every worker. Each running keyed job holds a *slot* of
its key, a number below the limit, and a partial unique index over ``(concurrency_key,
concurrency_slot) WHERE status = 'running'`` makes two running jobs in the same slot
impossible, whatever writes them. Leaving ``running`` (finish, cancel, recovery, release,
``needs_review``) frees the slot with the same write that changes the status: there is
nothing else to release, and nothing can stay held.

The claim, still one statement: (1) passes over jobs whose key is saturated, so that the jobs
behind them are claimed in their place; (2) ranks the picked jobs of each key and lets the
n-th of them run when the key has room for n more (counting its running jobs), in the n-th
free slot; (3) on PostgreSQL, takes a picked job with a key only if it can lock the key with
``pg_try_advisory_xact_lock``. For jobs without a key, (2) and (3) are a window function over
the picked rows and nothing more. SQLite needs no more: ``BEGIN IMMEDIATE`` lets one claim run
at a time, so what it counts stays true until it commits. On PostgreSQL claimers run side by
side under READ COMMITTED and each counts what its snapshot shows: the advisory lock, held
until commit, keeps a second claimer off a key while the first is claiming it (it passes
those jobs over, as ``SKIP LOCKED`` passes over rows, and never waits, so claimers cannot
deadlock). The one race left — a claimer whose snapshot was taken just before another claim of
the same key committed — hits the unique index, which fails the claim at once, and
``SqlStore.claim`` runs it again (``lost_slot_race``; about one claim in a hundred with eight
claimers on four busy keys, tests/integration/test_concurrency_key.py).

Why not an advisory lock alone: one taken inside the statement cannot refresh the snapshot the
statement counts with, and one taken in a statement of its own before each claim costs every
claim a round trip, keyed or not. Why not the unique index alone: claimers of one key would
queue on each other's uncommitted index entries, and two claimers could deadlock over two keys.

A batch whose keyed jobs were dropped may come out short while other jobs wait behind them.
The claim then runs the statement again in the same transaction, where those keys count as
saturated: only after a short batch that took a keyed job, never for jobs without a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from botyard.store.records import Activity, ClaimedJob
from botyard.store.tables import UTCDateTime, attempts, evidence, jobs, log_lines, steps, utcnow

SLOT_INDEX = "uq_jobs_concurrency_slot"
# The first half of the advisory lock of a key (the second is the key's hash): "boty".
_KEY_LOCKS = 0x626F7479

_CLAIMED_COLUMNS = (
    jobs.c.id,
    jobs.c.automation,
    jobs.c.payload,
    jobs.c.attempt,
    jobs.c.attempt_base,
    jobs.c.timeout,
    jobs.c.idempotent,
    jobs.c.max_attempts,
    jobs.c.queue,
    jobs.c.priority,
    jobs.c.created_at,
    jobs.c.not_before,
    jobs.c.concurrency_key,
)


def _statements() -> tuple[Any, Any]:
    """The claim, built once with bind parameters (building it per call costs more than it runs).

    ``status = 'queued'`` is a literal so that PostgreSQL's generic plan for the prepared
    statement still matches the partial index ``ix_jobs_claim`` (and ``'running'`` the index
    of the slots).
    """
    now = bindparam("b_now", type_=UTCDateTime())
    worker = bindparam("b_worker", type_=String())
    running = literal_column("'running'", String())
    holder = jobs.alias("holder")  # a running job, for counting what a key holds

    def holding(key: Any) -> Any:
        return and_(holder.c.status == running, holder.c.concurrency_key == key)

    held = select(func.count()).select_from(holder).where(holding(jobs.c.concurrency_key))
    pick = (
        select(jobs.c.id, jobs.c.priority, jobs.c.concurrency_key, jobs.c.concurrency_limit)
        .where(
            jobs.c.status == literal_column("'queued'", String()),
            jobs.c.queue.in_(bindparam("b_queues", expanding=True)),
            jobs.c.automation.in_(bindparam("b_automations", expanding=True)),
            jobs.c.not_before <= now,
            # Passed over while its key is saturated: the jobs behind it are claimed instead.
            or_(
                jobs.c.concurrency_key.is_(None),
                held.scalar_subquery() < jobs.c.concurrency_limit,
            ),
        )
        .order_by(jobs.c.priority.desc(), jobs.c.id)
        .limit(bindparam("b_limit", type_=Integer()))
    )

    def count_held(key: Any, *below: Any) -> Any:
        return select(func.count()).select_from(holder).where(holding(key), *below)

    def choose(picked: Any, *keep: Any) -> Any:
        """The picked jobs that may run: every one without a key; the n-th of a key's, if its
        key has room for n more, with the n-th free slot of the key. The subqueries only run
        for jobs with a key."""
        ranked = (
            select(
                picked.c.id,
                picked.c.concurrency_key,
                picked.c.concurrency_limit,
                func.row_number()
                .over(
                    partition_by=picked.c.concurrency_key,
                    order_by=(picked.c.priority.desc(), picked.c.id),
                )
                .label("rank"),
                case(
                    (
                        picked.c.concurrency_key.is_not(None),
                        count_held(picked.c.concurrency_key).scalar_subquery(),
                    )
                ).label("used"),
            )
            .where(*keep)
            .cte("ranked")
        )
        # Slot numbers below the largest limit picked; only read for jobs with a key.
        numbers = select(literal_column("0", Integer).label("slot")).cte("numbers", recursive=True)
        numbers = numbers.union_all(
            select(numbers.c.slot + literal_column("1", Integer)).where(
                numbers.c.slot + literal_column("1", Integer)
                < select(func.max(picked.c.concurrency_limit)).scalar_subquery()
            )
        )
        # The n-th free slot is the free one with n - 1 free slots below it.
        slot = (
            select(func.min(numbers.c.slot))
            .where(
                numbers.c.slot < ranked.c.concurrency_limit,
                numbers.c.slot < ranked.c.used + ranked.c.rank,
                ~exists()
                .where(
                    holding(ranked.c.concurrency_key),
                    holder.c.concurrency_slot == numbers.c.slot,
                )
                .correlate(ranked, numbers),
                numbers.c.slot
                - count_held(ranked.c.concurrency_key, holder.c.concurrency_slot < numbers.c.slot)
                .correlate(ranked, numbers)
                .scalar_subquery()
                == ranked.c.rank - literal_column("1", Integer),
            )
            .scalar_subquery()
        )
        return (
            select(
                ranked.c.id,
                case((ranked.c.concurrency_key.is_not(None), slot)).label("slot"),
            )
            .where(
                or_(
                    ranked.c.concurrency_key.is_(None),
                    ranked.c.rank + ranked.c.used <= ranked.c.concurrency_limit,
                )
            )
            .cte("chosen")
        )

    def values(chosen: Any) -> dict[str, Any]:
        return {
            "status": running,
            "attempt": jobs.c.attempt + 1,
            "worker_id": worker,
            "lease_expires_at": bindparam("b_expires", type_=UTCDateTime()),
            "side_effect": None,
            "updated_at": now,
            "started_at": now,
            "concurrency_slot": chosen.c.slot,
        }

    # PostgreSQL: pick (skipping rows other claimers hold, and keys they are claiming), move
    # and open attempts in one go.
    picked = pick.with_for_update(skip_locked=True).cte("picked")
    chosen = choose(
        picked,
        or_(
            picked.c.concurrency_key.is_(None),
            func.pg_try_advisory_xact_lock(_KEY_LOCKS, func.hashtext(picked.c.concurrency_key)),
        ),
    )
    moved = (
        update(jobs)
        .where(jobs.c.id == chosen.c.id)
        .values(values(chosen))
        .returning(*_CLAIMED_COLUMNS)
        .cte("moved")
    )
    opened = insert(attempts).from_select(
        ["job_id", "number", "worker_id", "started_at", "ready_at"],
        select(moved.c.id, moved.c.attempt, worker, now, moved.c.not_before),
    )
    postgres = select(moved).add_cte(opened.cte("opened"))
    # SQLite: BEGIN IMMEDIATE already excludes every other writer.
    chosen = choose(pick.cte("picked"))
    sqlite = (
        update(jobs)
        .where(jobs.c.id == chosen.c.id)
        .values(values(chosen))
        .returning(*_CLAIMED_COLUMNS)
    )
    return postgres, sqlite


_CLAIM_POSTGRES, _CLAIM_SQLITE = _statements()


def lost_slot_race(exc: IntegrityError) -> bool:
    """Whether a claim failed because a concurrent claim took the same slot of a key first."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == SLOT_INDEX


def claim(
    conn: Connection,
    *,
    worker_id: str,
    queues: list[str],
    automations: list[str],
    limit: int,
    lease_ttl: float,
) -> list[ClaimedJob]:
    """Move up to ``limit`` queued jobs to running for ``worker_id`` and open their attempts.

    On PostgreSQL this may raise an ``IntegrityError`` for which ``lost_slot_race`` is true:
    the transaction is lost, and the claim may simply be tried again.
    """
    now = utcnow()
    params = {
        "b_now": now,
        "b_worker": worker_id,
        "b_expires": now + timedelta(seconds=lease_ttl),
        "b_queues": queues,
        "b_automations": automations,
        "b_limit": limit,
    }
    rows: list[Any] = []
    while True:
        batch = _claim_once(conn, params, worker_id)
        rows.extend(batch)
        # Keyed jobs beyond their key's limit may have taken room in the batch: once more, now
        # that those keys count as saturated. Without keyed jobs, one statement it is.
        if not batch or len(rows) >= limit or all(r["concurrency_key"] is None for r in batch):
            break
        params["b_limit"] = limit - len(rows)
    ordered = sorted(rows, key=lambda r: (-r["priority"], r["id"]))
    return [
        ClaimedJob(
            id=r["id"],
            automation=r["automation"],
            payload=r["payload"],
            attempt=r["attempt"],
            attempt_base=r["attempt_base"],
            timeout=r["timeout"],
            idempotent=r["idempotent"],
            max_attempts=r["max_attempts"],
            queue=r["queue"],
            created_at=r["created_at"],
            not_before=r["not_before"],
            concurrency_key=r["concurrency_key"],
        )
        for r in ordered
    ]


def _claim_once(conn: Connection, params: dict[str, Any], worker_id: str) -> list[Any]:
    if conn.dialect.name == "postgresql":
        return list(conn.execute(_CLAIM_POSTGRES, params).mappings().all())
    rows = list(conn.execute(_CLAIM_SQLITE, params).mappings().all())
    if rows:
        conn.execute(
            insert(attempts),
            [
                {
                    "job_id": r["id"],
                    "number": r["attempt"],
                    "worker_id": worker_id,
                    "started_at": params["b_now"],
                    "ready_at": r["not_before"],
                }
                for r in rows
            ],
        )
    return rows


def write_activity(conn: Connection, items: Sequence[Activity]) -> None:
    """Write what attempts reported, in order; the caller has checked their fence."""
    logs = [
        {
            "job_id": a.job_id,
            "attempt": a.attempt,
            "at": a.at,
            "level": a.data["level"],
            "message": a.data["message"],
        }
        for a in items
        if a.kind == "log"
    ]
    if logs:
        conn.execute(insert(log_lines), logs)
    for a in items:
        if a.kind == "step_start":
            conn.execute(
                insert(steps).values(
                    job_id=a.job_id,
                    attempt=a.attempt,
                    name=a.data["name"],
                    kind="step",
                    status="running",
                    started_at=a.at,
                )
            )
        elif a.kind == "step_end":
            conn.execute(
                update(steps)
                .where(
                    and_(
                        steps.c.job_id == a.job_id,
                        steps.c.attempt == a.attempt,
                        steps.c.name == a.data["name"],
                        steps.c.status == "running",
                    )
                )
                .values(status=a.data["status"], finished_at=a.at)
            )
        elif a.kind == "evidence":
            conn.execute(
                insert(evidence).values(
                    job_id=a.job_id,
                    attempt=a.attempt,
                    step=a.data.get("step"),
                    name=a.data["name"],
                    path=a.data["path"],
                    content_type=a.data["content_type"],
                    size=a.data["size"],
                    created_at=a.at,
                )
            )
