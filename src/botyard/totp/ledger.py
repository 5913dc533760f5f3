"""The TOTP ledger: which time step each account handed out last, in one atomic statement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from botyard.store.tables import totp_ledger, utcnow


@dataclass(frozen=True, slots=True)
class ProviderFigures:
    provider: str
    issued: int
    succeeded: int
    failed: int

    @property
    def consumed(self) -> int:
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.consumed if self.consumed else None


class Ledger(Protocol):
    def claim(self, account: str, provider: str, step: int) -> bool:
        """Take ``step`` for ``account`` if it is later than every step taken before."""
        ...

    def consumed(self, account: str, success: bool) -> None: ...

    def figures(self) -> list[ProviderFigures]: ...


class SqlLedger:
    """The ledger in the job store: one upsert that only moves ``last_step`` forward."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def claim(self, account: str, provider: str, step: int) -> bool:
        now = utcnow()
        stmt = self.insert(totp_ledger).values(
            account=account,
            provider=provider,
            last_step=step,
            issued=1,
            succeeded=0,
            failed=0,
            updated_at=now,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[totp_ledger.c.account],
            set_={
                "last_step": stmt.excluded.last_step,
                "issued": totp_ledger.c.issued + 1,
                "updated_at": now,
            },
            where=totp_ledger.c.last_step < stmt.excluded.last_step,
        ).returning(totp_ledger.c.account)
        with self.engine.begin() as conn:
            return conn.execute(upsert).first() is not None

    def consumed(self, account: str, success: bool) -> None:
        column = totp_ledger.c.succeeded if success else totp_ledger.c.failed
        with self.engine.begin() as conn:
            conn.execute(
                update(totp_ledger)
                .where(totp_ledger.c.account == account)
                .values({column.name: column + 1, "updated_at": utcnow()})
            )

    def figures(self) -> list[ProviderFigures]:
        query = (
            select(
                totp_ledger.c.provider,
                func.sum(totp_ledger.c.issued),
                func.sum(totp_ledger.c.succeeded),
                func.sum(totp_ledger.c.failed),
            )
            .group_by(totp_ledger.c.provider)
            .order_by(totp_ledger.c.provider)
        )
        with self.engine.connect().execution_options(readonly=True) as conn:
            return [
                ProviderFigures(str(p), int(i or 0), int(s or 0), int(f or 0))
                for p, i, s, f in conn.execute(query)
            ]
