"""Users, password hashes, JWTs, roles and permissions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher

from botyard.errors import InvalidCredentials, InvalidToken, PermissionDenied
from botyard.store.accounts import Users

_hasher = PasswordHash((BcryptHasher(rounds=12),))
# Verifying against this when the user does not exist keeps the answer time the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


_VIEW = {"job:read", "worker:read", "evidence:read", "metrics:read"}
_OPERATE = _VIEW | {"job:create", "job:cancel", "job:retry", "job:resolve", "queue:process"}
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset(_VIEW),
    Role.OPERATOR: frozenset(_OPERATE),
    Role.ADMIN: frozenset(
        _OPERATE | {"user:manage", "audit:read", "scheduler:manage", "privacy:manage"}
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
    def __init__(self, users: Users, *, secret: str, algorithm: str, expiry_minutes: int) -> None:
        self.users = users
        self.secret = secret
        self.algorithm = algorithm
        self.expiry = timedelta(minutes=expiry_minutes)

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
        user = self.users.get(claims["sub"])
        if user is None or user.disabled:
            raise InvalidToken()
        del role  # the stored role wins: a demoted user loses rights before the token expires
        return Principal(user.username, Role(user.role))


def ensure_admin(users: Users, username: str, password: str | None) -> str | None:
    """Create the first admin when there are no users; returns a generated password, if any."""
    if users.count() > 0:
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    users.create(username, hash_password(password), Role.ADMIN.value)
    return generated
