"""Users of the API and the audit log of what they did."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, RowMapping, Select, func, select, update
from sqlalchemy.exc import IntegrityError

from botyard.errors import BotyardError
from botyard.store.records import AuditRecord, UserRecord
from botyard.store.tables import audit_events, users, utcnow


class UserExists(BotyardError):
    """A user with this name exists already."""


class UnknownUser(BotyardError):
    """No user has this name."""


def _user(row: RowMapping) -> UserRecord:
    return UserRecord(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        role=row["role"],
        disabled=row["disabled"],
        token_version=row["token_version"],
    )


class Users:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, username: str) -> UserRecord | None:
        with self.engine.connect().execution_options(readonly=True) as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
            return _user(row) if row else None

    def create(self, username: str, password_hash: str, role: str) -> UserRecord:
        try:
            with self.engine.begin() as conn:
                row = (
                    conn.execute(
                        users.insert()
                        .values(
                            username=username,
                            password_hash=password_hash,
                            role=role,
                            disabled=False,
                            created_at=utcnow(),
                        )
                        .returning(*users.c)
                    )
                    .mappings()
                    .one()
                )
                return _user(row)
        except IntegrityError as exc:
            raise UserExists(f"user {username!r} exists already", username=username) from exc

    def change(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
        end_tokens: bool = True,
    ) -> UserRecord:
        """Set what is given and end every token of the user (``token_version`` + 1), at once
        (unless ``end_tokens`` is false).

        With nothing given it only ends the tokens (a logout). ``UnknownUser`` when there is none.
        """
        values: dict[str, Any] = {}
        if end_tokens:
            values["token_version"] = users.c.token_version + 1
        if password_hash is not None:
            values["password_hash"] = password_hash
        if role is not None:
            values["role"] = role
        if disabled is not None:
            values["disabled"] = disabled
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    update(users)
                    .where(users.c.username == username)
                    .values(values)
                    .returning(*users.c)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownUser(f"no user {username!r}", username=username)
        return _user(row)

    def rehash(self, user: UserRecord, password_hash: str) -> None:
        """Store a stronger hash of the same password; its tokens stay valid. A password
        changed meanwhile wins: the row is only updated while it holds the old hash."""
        with self.engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == user.id, users.c.password_hash == user.password_hash)
                .values(password_hash=password_hash)
            )

    def delete(self, username: str) -> UserRecord:
        """Remove the user (its tokens end with it: a new user of that name has another id)."""
        with self.engine.begin() as conn:
            row = (
                conn.execute(users.delete().where(users.c.username == username).returning(*users.c))
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownUser(f"no user {username!r}", username=username)
        return _user(row)

    def all(self) -> list[UserRecord]:
        with self.engine.connect().execution_options(readonly=True) as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).mappings()
            return [_user(r) for r in rows]

    def count(self) -> int:
        with self.engine.connect().execution_options(readonly=True) as conn:
            return conn.execute(select(func.count()).select_from(users)).scalar_one()


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | None = None,
        client: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                audit_events.insert().values(
                    at=utcnow(),
                    actor=actor,
                    action=action,
                    target=target,
                    client=client,
                    details=details or {},
                )
            )

    def recent(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Events newest first, optionally only those of one ``action`` and/or ``actor``."""
        query = _where(select(audit_events), action, actor)
        with self.engine.connect().execution_options(readonly=True) as conn:
            rows = conn.execute(
                query.order_by(audit_events.c.id.desc()).limit(limit).offset(offset)
            ).mappings()
            return [AuditRecord(**dict(r)) for r in rows]

    def count(self, *, action: str | None = None, actor: str | None = None) -> int:
        query = _where(select(func.count()).select_from(audit_events), action, actor)
        with self.engine.connect().execution_options(readonly=True) as conn:
            total: int = conn.execute(query).scalar_one()
            return total


def _where(query: Select[Any], action: str | None, actor: str | None) -> Select[Any]:
    if action is not None:
        query = query.where(audit_events.c.action == action)
    if actor is not None:
        query = query.where(audit_events.c.actor == actor)
    return query
