"""What changes a user: add, a new password or role, disable, enable, delete, log out.

Every change but ``add`` and ``enable`` ends all the user's tokens (its token version goes up, or
the user is gone), and every change is audited. ``botyard users`` and the dashboard's logout
call these; an orchestrator that did not make the change sees it within the authenticator's
``user_ttl`` (5 s).
"""

from __future__ import annotations

from typing import Any

from botyard.errors import BotyardError
from botyard.orchestrator.auth import Authenticator, Role, hash_password
from botyard.store.accounts import AuditLog, Users
from botyard.store.records import UserRecord

MIN_PASSWORD = 8


class PasswordTooShort(BotyardError):
    """Use a password of at least 8 characters."""


class UserAdmin:
    def __init__(
        self, users: Users, audit: AuditLog, authenticator: Authenticator | None = None
    ) -> None:
        self.users = users
        self.audit = audit
        self.authenticator = authenticator  # the caller's own cache, forgotten at once

    def add(
        self, username: str, password: str, role: Role, *, actor: str, client: str | None = None
    ) -> UserRecord:
        user = self.users.create(username, _hashed(password), role.value)
        self._audit("user_created", user, actor, client, {"role": role.value})
        return user

    def set_password(
        self, username: str, password: str, *, actor: str, client: str | None = None
    ) -> UserRecord:
        user = self.users.change(username, password_hash=_hashed(password))
        return self._changed("user_password_changed", user, actor, client)

    def set_role(
        self, username: str, role: Role, *, actor: str, client: str | None = None
    ) -> UserRecord:
        user = self.users.change(username, role=role.value)
        return self._changed("user_role_changed", user, actor, client, {"role": role.value})

    def disable(self, username: str, *, actor: str, client: str | None = None) -> UserRecord:
        user = self.users.change(username, disabled=True)
        return self._changed("user_disabled", user, actor, client)

    def enable(self, username: str, *, actor: str, client: str | None = None) -> UserRecord:
        """Let the user log in again. Its tokens are left alone: a disabled user's ended when it
        was disabled (and stay ended), and enabling one that was never disabled — a script
        enabling everyone, say — must not log it out everywhere."""
        user = self.users.change(username, disabled=False, end_tokens=False)
        return self._changed("user_enabled", user, actor, client)

    def delete(self, username: str, *, actor: str, client: str | None = None) -> UserRecord:
        return self._changed("user_deleted", self.users.delete(username), actor, client)

    def log_out(self, username: str, *, actor: str, client: str | None = None) -> UserRecord:
        """End every token of the user: each browser session and each API bearer."""
        return self._changed("logout", self.users.change(username), actor, client)

    def _changed(
        self,
        action: str,
        user: UserRecord,
        actor: str,
        client: str | None,
        details: dict[str, Any] | None = None,
    ) -> UserRecord:
        if self.authenticator is not None:
            self.authenticator.forget(user.username)
        self._audit(action, user, actor, client, details)
        return user

    def _audit(
        self,
        action: str,
        user: UserRecord,
        actor: str,
        client: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        self.audit.record(
            action, actor=actor, target=f"user:{user.username}", client=client, details=details
        )


def _hashed(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise PasswordTooShort()
    return hash_password(password)
