"""Botyard's own secrets, and keeping them from the processes of jobs and tasks.

A job's (or a standby task's) process needs none of them: a job gets a credential of its own
attempt instead of the worker token, and never reaches the store or Redis. Whatever else the
environment holds (portal credentials, BOTYARD_URL, settings) is the job's to use.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Mapping

SECRETS = frozenset(
    {
        "BOTYARD_WORKER_TOKEN",
        "DATABASE_URL",
        "JWT_SECRET",
        "JWT_SECRET_KEY",
        "ADMIN_PASSWORD",
        "TASK_AUTH_TOKEN",
        "REDIS_URL",
        "VALKEY_PASSWORD",
    }
)
# libpq reads these (PGPASSWORD, PGHOST, PGUSER, PGPASSFILE, PGSSLKEY, ...): the store's own
# connection, whichever of them a deployment sets it up with.
_LIBPQ_PREFIX = "PG"
_PR_SET_DUMPABLE = 4


def is_secret(name: str) -> bool:
    return name in SECRETS or name.startswith(_LIBPQ_PREFIX)


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment less Botyard's own secrets."""
    return {name: value for name, value in environ.items() if not is_secret(name)}


def hide_own_environment() -> None:
    """Linux: make this process undumpable, so that processes of the same uid (its jobs) can
    read neither ``/proc/<pid>/environ`` nor its memory, where the secrets above are. Processes
    it starts are dumpable again (execve resets it), which the sweepers rely on."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
