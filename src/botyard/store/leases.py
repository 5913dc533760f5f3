"""Named leases in the store: one holder at a time, taken over only once they expire.

The orchestrator's replicas use the ``maintenance`` lease to pick the one that runs the
maintenance jobs; any replica can take over when the holder stops renewing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from botyard.store.tables import leases, utcnow


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


class Leases:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew ``name`` for ``holder``: one atomic upsert; True when held now."""
        now = utcnow()
        expires = now + timedelta(seconds=ttl)
        dialect_insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )
        insert = dialect_insert(leases).values(
            name=name, holder=holder, acquired_at=now, expires_at=expires
        )
        stmt = insert.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": holder,
                "expires_at": expires,
                # an unbroken holding keeps its start; a new holder starts its own
                "acquired_at": case(
                    (leases.c.holder == holder, leases.c.acquired_at),
                    else_=insert.excluded.acquired_at,
                ),
            },
            where=or_(leases.c.holder == holder, leases.c.expires_at < now),
        ).returning(leases.c.holder)
        with self.engine.begin() as conn:
            row = conn.execute(stmt).first()
        return row is not None and row.holder == holder

    def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean shutdown), so another replica need not wait."""
        with self.engine.begin() as conn:
            conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    def current(self, name: str) -> LeaseHolder | None:
        with self.engine.connect().execution_options(readonly=True) as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).mappings().first()
        return LeaseHolder(**dict(row)) if row else None
