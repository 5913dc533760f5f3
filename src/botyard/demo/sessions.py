"""Browser sessions: a random id in a cookie, the state on the server."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

COOKIE = "portal_session"


@dataclass(frozen=True)
class Session:
    email: str
    verified: bool  # False between the password and the one-time code


class SessionStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def start(self, email: str, *, verified: bool) -> str:
        """A new session id; each step of the login gets a fresh one, so ids never gain rights."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session_id] = Session(email, verified)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            return self._sessions.get(session_id)

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)
