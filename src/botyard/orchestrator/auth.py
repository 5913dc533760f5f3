"""Users, password hashes, JWTs, roles and permissions."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher

from botyard.errors import InvalidCredentials, InvalidToken, PermissionDenied
from botyard.store.accounts import Users
from botyard.store.records import UserRecord

_hasher = PasswordHash((BcryptHasher(rounds=12),))
# Verifying against this when the user does not exist keeps the answer time the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


_VIEW = {"job:read", "worker:read", "evidence:read", "metrics:read"}
_OPERATE = _VIEW | {
    "job:create",
    "job:cancel",
    "job:retry",
    "job:resolve",
    "queue:process",
    "browser:manage",
}
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset(_VIEW),
    Role.OPERATOR: frozenset(_OPERATE),
    Role.ADMIN: frozenset(
        _OPERATE
        | {"user:manage", "audit:read", "scheduler:manage", "privacy:manage", "worker:manage"}
    ),
}


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    role: Role


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_permission(principal: Principal, permission: str) -> None:
    """Raise ``PermissionDenied`` unless the principal's role grants ``resource:action``."""
    if permission not in PERMISSIONS[principal.role]:
        raise PermissionDenied(f"the {principal.role.value} role may not {permission}")


class Authenticator:
    """Logs users in and verifies their tokens.

    A verified token's user is read from the store at most every ``user_ttl`` seconds per
    process, so a disabled or demoted user loses their rights within that time, and a request
    costs no database read for its identity.
    """

    def __init__(
        self,
        users: Users,
        *,
        secret: str,
        algorithm: str,
        expiry_minutes: int,
        user_ttl: float = 5.0,
    ) -> None:
        self.users = users
        self.secret = secret
        self.algorithm = algorithm
        self.expiry = timedelta(minutes=expiry_minutes)
        self.user_ttl = user_ttl
        self._known: dict[str, tuple[float, UserRecord | None]] = {}

    def login(self, username: str, password: str) -> Principal:
        user = self.users.get(username)
        valid = _hasher.verify(password, user.password_hash if user else _DUMMY_HASH)
        if user is None or not valid or user.disabled:
            raise InvalidCredentials()
        return Principal(user.username, Role(user.role))

    def issue(self, principal: Principal) -> str:
        now = datetime.now(UTC)
        claims = {"sub": principal.username, "role": principal.role.value, "iat": now}
        claims["exp"] = now + self.expiry
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": ["sub", "exp", "role"]},
            )
            role = Role(claims["role"])
        except (jwt.PyJWTError, ValueError):
            raise InvalidToken() from None
        user = self._user(claims["sub"])
        if user is None or user.disabled:
            raise InvalidToken()
        del role  # the stored role wins: a demoted user loses rights before the token expires
        return Principal(user.username, Role(user.role))

    def _user(self, username: str) -> UserRecord | None:
        now = time.monotonic()
        known = self._known.get(username)
        if known is not None and known[0] > now:
            return known[1]
        user = self.users.get(username)
        if len(self._known) > 10_000:  # tokens of many users: start over rather than grow
            self._known.clear()
        self._known[username] = (now + self.user_ttl, user)
        return user


def ensure_admin(users: Users, username: str, password: str | None) -> str | None:
    """Create the first admin when there are no users; returns a generated password, if any."""
    if users.count() > 0:
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    users.create(username, hash_password(password), Role.ADMIN.value)
    return generated
