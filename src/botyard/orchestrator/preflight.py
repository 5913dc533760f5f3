"""Start-up checks: settings the orchestrator refuses to start with, and what it connects to."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from botyard.errors import ConfigurationError
from botyard.masking import mask_url
from botyard.settings import Settings

log = logging.getLogger("botyard.api")

# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def problems(settings: Settings) -> list[str]:
    """What is wrong with ``settings`` for running the orchestrator, in words for a person."""
    found: list[str] = []
    auth = settings.auth
    algorithm = auth.jwt_algorithm
    if algorithm not in HMAC_KEY_BYTES:
        found.append(
            f"JWT_ALGORITHM={algorithm!r} is not supported: Botyard signs tokens with a shared"
            f" secret, so use one of {', '.join(HMAC_KEY_BYTES)}"
        )
    if auth.jwt_secret is not None:  # the generated secret is long enough by construction
        size = len(auth.jwt_secret.get_secret_value().encode())
        needed = HMAC_KEY_BYTES.get(algorithm, 0)  # an unsupported algorithm is reported above
        if size == 0:
            found.append("JWT_SECRET is set but empty: unset it or set a random secret")
        elif size < needed and auth.development_mode:
            log.warning(
                "JWT_SECRET is %d bytes, under the %d bytes %s needs; accepted only because"
                " DEVELOPMENT_MODE is on",
                size,
                needed,
                algorithm,
            )
        elif size < needed:
            found.append(
                f"JWT_SECRET is {size} bytes long; {algorithm} needs at least {needed} bytes."
                " Set a longer random secret (python -c 'import secrets;"
                " print(secrets.token_urlsafe(48))'), or unset JWT_SECRET to use the one"
                f" generated in {settings.store.data_dir / 'jwt-secret'}"
                " (DEVELOPMENT_MODE=true accepts a short one for local tests)"
            )
    tls = settings.tls
    if (tls.cert_path is None) != (tls.key_path is None):
        given, missing = ("SSL_CERT_PATH", "SSL_KEY_PATH")
        if tls.cert_path is None:
            given, missing = missing, given
        found.append(f"{given} is set but {missing} is not: set both to serve HTTPS, or neither")
    cors = settings.cors
    if "*" in cors.origins and cors.allow_credentials:
        found.append(
            "CORS_ORIGINS='*' with CORS_ALLOW_CREDENTIALS=true would let any web site call the"
            " API with a user's credentials: name the allowed origins instead"
        )
    for origin in cors.origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            found.append(
                f"CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port], e.g."
                " https://ops.example.com)"
            )
    return found


def check(settings: Settings) -> None:
    """Raise ``ConfigurationError`` naming every problem when the orchestrator must not start."""
    found = problems(settings)
    if found:
        raise ConfigurationError(
            "Botyard cannot start with this configuration:\n  - " + "\n  - ".join(found),
            problems=found,
        )


CONNECT_TIMEOUT = 3  # seconds; a check a person waits for, not a service's patience


def connection_problems(settings: Settings, *, redis: bool = True) -> list[str]:
    """What the orchestrator could not reach: the store (and Redis, when one is configured),
    each tried once within ``CONNECT_TIMEOUT`` seconds; one line each, saying what to do."""
    found = [_store_problem(settings)]
    if redis and settings.redis.url is not None:
        found.append(_redis_problem(settings.redis.url))
    return [problem for problem in found if problem]


def _store_problem(settings: Settings) -> str | None:
    url = make_url(settings.store.url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_problem(Path(url.database or ""))
    engine = create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return (
            f"cannot connect to the database at {mask_url(settings.store.database_url or '')}:"
            f" {_first_line(getattr(exc, 'orig', None) or exc)}. Check DATABASE_URL (host, port,"
            " user, password, database) and that PostgreSQL runs and accepts connections from here"
        )
    finally:
        engine.dispose()
    return None


def _sqlite_problem(database: Path) -> str | None:
    """The SQLite file is opened (read-only: a check creates nothing) or its folder made."""
    folder = database.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    fix = "set BOTYARD_DATA_DIR to a folder this user can write, or DATABASE_URL"
    if existing is None or not existing.is_dir():
        return f"the data directory {folder} cannot be made ({existing} is a file): {fix}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the data directory {folder} is not writable by this user: {fix}"
    if not database.exists():
        return None  # created, with its schema, at the first start
    try:
        with contextlib.closing(
            # Quoted as a URI: a ?, # or % in the path would otherwise end or change it (and
            # without its mode=ro, SQLite would create the file the path was cut down to).
            sqlite3.connect(
                f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT
            )
        ) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as exc:
        return f"cannot open the SQLite database {database}: {exc}. Restore a backup, or {fix}"
    return None


def _redis_problem(url: str) -> str | None:
    try:
        from botyard.bus.redis_events import connect

        connect(url, timeout=CONNECT_TIMEOUT).ping()
    except ImportError:
        return (
            "REDIS_URL or VALKEY_HOST is set but redis-py is missing: pip install 'botyard[redis]'"
        )
    except Exception as exc:
        return (
            f"Redis at {mask_url(url)} does not answer: {_first_line(exc)}. Check REDIS_URL or"
            " VALKEY_HOST (and VALKEY_PASSWORD), or unset them to run without Redis"
        )
    return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(exc).__name__
