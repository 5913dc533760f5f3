"""Browser sessions in the store: what jobs opened, what the API provisioned, what leaked.

A job's session counts as open while its row says so and its attempt still runs the job: an
attempt killed with its browser never reports the close, and needs no clean-up for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from botyard.masking import mask_url
from botyard.store.records import Activity
from botyard.store.tables import browser_sessions, jobs, utcnow

_RUNNING = "running"
_holder = jobs.alias("holder")  # the job whose running attempt holds a session
_COLUMNS = (
    browser_sessions,
    jobs.c.worker_id,
    jobs.c.status.label("job_status"),
    jobs.c.attempt.label("job_attempt"),
)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _insert_new(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose id is not stored yet (a retried write, or a leak two workers saw)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(browser_sessions).on_conflict_do_nothing(), rows)


def shown_endpoint(url: str | None) -> str | None:
    """An endpoint as it may be stored and shown: no password, no query string (tokens)."""
    if not url:
        return url
    return mask_url(urlunsplit(urlsplit(url)._replace(query="", fragment="")))


def write_sessions(conn: Connection, items: Sequence[Activity]) -> None:
    """Store the ``browser`` activity of attempts (open, then closed)."""
    for a in items:
        if a.kind != "browser":
            continue
        data = a.data
        if data["state"] == "open":
            _insert_new(
                conn,
                [
                    {
                        "id": data["id"],
                        "job_id": a.job_id,
                        "attempt": a.attempt,
                        "provider": data["provider"],
                        "kind": data["kind"],
                        "endpoint": shown_endpoint(data.get("endpoint")),
                        "warm": bool(data.get("warm")),
                        "ready_seconds": data.get("ready_seconds"),
                        "pid": data.get("browser_pid"),
                        "status": "open",
                        "started_at": _at(data["started_at"]),
                    }
                ],
            )
        else:
            conn.execute(
                update(browser_sessions)
                .where(browser_sessions.c.id == data["id"])
                .values(status="closed", ended_at=a.at)
            )


def _live() -> Any:
    """Open rows whose attempt still runs (jobs' sessions) or that no job holds (the API's)."""
    return and_(
        browser_sessions.c.status == "open",
        or_(
            browser_sessions.c.job_id.is_(None),
            select(_holder.c.id)
            .where(
                _holder.c.id == browser_sessions.c.job_id,
                _holder.c.attempt == browser_sessions.c.attempt,
                _holder.c.status == _RUNNING,
            )
            .exists(),
        ),
    )


def open_sessions(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(*_COLUMNS)
        .select_from(browser_sessions.outerjoin(jobs, jobs.c.id == browser_sessions.c.job_id))
        .where(_live())
        .order_by(browser_sessions.c.started_at)
    ).mappings()
    return [_public(row) for row in rows]


def recent_sessions(conn: Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(*_COLUMNS)
        .select_from(browser_sessions.outerjoin(jobs, jobs.c.id == browser_sessions.c.job_id))
        .order_by(browser_sessions.c.started_at.desc())
        .limit(limit)
    ).mappings()
    return [_public(row) for row in rows]


def get_session(conn: Connection, session_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(*_COLUMNS)
            .select_from(browser_sessions.outerjoin(jobs, jobs.c.id == browser_sessions.c.job_id))
            .where(browser_sessions.c.id == session_id)
        )
        .mappings()
        .first()
    )
    return _public(row) if row is not None else None


def _public(row: Any) -> dict[str, Any]:
    status = row["status"]
    if status == "open" and row["job_id"] is not None:
        running = row["job_status"] == _RUNNING and row["job_attempt"] == row["attempt"]
        status = "open" if running else "closed"  # its attempt ended, and the browser with it
    return {
        "id": row["id"],
        "job_id": row["job_id"],
        "attempt": row["attempt"],
        "owner": row["owner"] or row["worker_id"],
        "provider": row["provider"],
        "kind": row["kind"],
        "endpoint": row["endpoint"],
        "warm": row["warm"],
        "ready_seconds": row["ready_seconds"],
        "pid": row["pid"],
        "status": status,
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
    }


def add_session(conn: Connection, session: dict[str, Any], owner: str) -> None:
    """A session the API provisioned (no job holds it)."""
    conn.execute(
        insert(browser_sessions).values(
            id=session["id"],
            owner=owner,
            provider=session["provider"],
            kind=session["kind"],
            endpoint=shown_endpoint(session.get("endpoint")),
            warm=False,
            ready_seconds=session.get("ready_seconds"),
            pid=session.get("pid"),
            status="open",
            started_at=_at(session["started_at"]),
        )
    )


def close_session(conn: Connection, session_id: str) -> bool:
    done = conn.execute(
        update(browser_sessions)
        .where(browser_sessions.c.id == session_id, browser_sessions.c.status == "open")
        .values(status="closed", ended_at=utcnow())
    )
    return done.rowcount == 1


def add_leaks(conn: Connection, owner: str, leaks: Sequence[tuple[str, int, float]]) -> None:
    """Browsers the sweeper killed: ``(id, pid, started_at)`` each."""
    now = utcnow()
    _insert_new(
        conn,
        [
            {
                "id": leak_id,
                "owner": owner,
                "provider": "local",
                "kind": "playwright",
                "warm": False,
                "pid": pid,
                "status": "leaked",
                "started_at": _at(started),
                "ended_at": now,
            }
            for leak_id, pid, started in leaks
        ],
    )


def figures(conn: Connection) -> dict[str, Any]:
    """Open sessions per provider, leaks killed, and ready-time figures of jobs' sessions."""
    open_rows = conn.execute(
        select(browser_sessions.c.provider, func.count())
        .where(_live())
        .group_by(browser_sessions.c.provider)
    ).all()
    leaked = conn.execute(
        select(func.count()).where(browser_sessions.c.status == "leaked")
    ).scalar_one()
    started = conn.execute(
        select(browser_sessions.c.provider, browser_sessions.c.warm, func.count())
        .where(browser_sessions.c.job_id.is_not(None))
        .group_by(browser_sessions.c.provider, browser_sessions.c.warm)
    ).all()
    return {
        "open": {provider: count for provider, count in open_rows},
        "leaked": int(leaked),
        "started": [(provider, bool(warm), count) for provider, warm, count in started],
    }


class BrowserSessions:
    """The ``browser_sessions`` table, for the API, the sweeper and Prometheus."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return open_sessions(conn)

    def recent(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return recent_sessions(conn, limit)

    def get(self, session_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return get_session(conn, session_id)

    def add(self, session: dict[str, Any], owner: str) -> None:
        with self.engine.begin() as conn:
            add_session(conn, session, owner)

    def close(self, session_id: str) -> bool:
        with self.engine.begin() as conn:
            return close_session(conn, session_id)

    def add_leaks(self, owner: str, leaks: Sequence[tuple[str, int, float]]) -> None:
        if leaks:
            with self.engine.begin() as conn:
                add_leaks(conn, owner, leaks)

    def figures(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return figures(conn)

    def running_jobs(self) -> set[int]:
        """Jobs running now: their browser pods are busy, whatever their last use says."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(jobs.c.id).where(jobs.c.status == _RUNNING)).scalars())
