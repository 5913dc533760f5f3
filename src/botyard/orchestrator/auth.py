"""Users, password hashes, JWTs, roles and permissions."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from botyard.errors import InvalidCredentials, InvalidToken, PermissionDenied
from botyard.store.accounts import Users
from botyard.store.records import UserRecord

_BCRYPT_BYTES = 72


class _LegacyBcrypt(BcryptHasher):
    """Hashes stored before argon2: still verified, and replaced by argon2 at the next login.

    bcrypt only ever reads a password's first 72 bytes (bcrypt 5 refuses longer passwords where
    older versions ignored the rest), so those are what a stored bcrypt hash is checked against.
    """

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        raw = password.encode() if isinstance(password, str) else password
        return bool(super().verify(raw[:_BCRYPT_BYTES], hash))


# argon2id for new hashes: no length limit (bcrypt's 72 bytes made long passwords a 500) and
# memory-hard. OWASP's first recommended parameters (19 MiB, 2 passes, 1 lane) keep a login
# about as slow as bcrypt's 12 rounds with little memory per concurrent login.
_hasher = PasswordHash(
    (Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1), _LegacyBcrypt(rounds=12))
)
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
    user_id: int
    token_version: int  # the user's when the token was issued: a bump ends the token

    @classmethod
    def of(cls, user: UserRecord) -> Principal:
        return cls(user.username, Role(user.role), user.id, user.token_version)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_permission(principal: Principal, permission: str) -> None:
    """Raise ``PermissionDenied`` unless the principal's role grants ``resource:action``."""
    if permission not in PERMISSIONS[principal.role]:
        raise PermissionDenied(f"the {principal.role.value} role may not {permission}")


class Authenticator:
    """Logs users in and verifies their tokens.

    A token names its user by name, id and token version. A verified token's user is read from
    the store at most every ``user_ttl`` seconds per process, so a user logged out, deleted,
    disabled, demoted or given a new password loses every token within that time on every
    replica (at once in the process that made the change), and a request costs no database
    read for its identity.
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
        """The user whose password this is; ``InvalidCredentials`` otherwise, whose
        ``data["known_user"]`` is the user's name only when such a user exists."""
        user = self.users.get(username)
        valid, better = _hasher.verify_and_update(
            password, user.password_hash if user else _DUMMY_HASH
        )
        if user is None or not valid or user.disabled:
            raise InvalidCredentials(known_user=user.username if user else None)
        if better is not None:  # a bcrypt hash from before argon2, or weaker parameters
            self.users.rehash(user, better)
        return Principal.of(user)

    def issue(self, principal: Principal) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": principal.username,
            "uid": principal.user_id,
            "ver": principal.token_version,
            "role": principal.role.value,
            "iat": now,
            "exp": now + self.expiry,
        }
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": ["sub", "exp", "role", "uid", "ver"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        user = self._user(str(claims["sub"]))
        # The same name is not enough: a user deleted and created again has another id, and
        # every logout, new password or role, or disable raised the version.
        if (
            user is None
            or user.disabled
            or user.id != claims["uid"]
            or user.token_version != claims["ver"]
        ):
            raise InvalidToken()
        return Principal.of(user)  # the stored role wins over the token's

    def forget(self, username: str) -> None:
        """Drop the cached user: this process sees a change made here at once."""
        self._known.pop(username, None)

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
