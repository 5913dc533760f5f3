"""Wake-ups through PostgreSQL LISTEN/NOTIFY on one channel."""

from __future__ import annotations

import contextlib
import threading

import psycopg

from botyard.bus.base import Event

CHANNEL = "botyard_events"


def _conninfo(sqlalchemy_url: str) -> str:
    from sqlalchemy import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresSubscription:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        try:
            for notify in self.conn.notifies(timeout=max(0.0, timeout), stop_after=1):
                self._add(events, notify.payload)
            # Take whatever else is already pending without waiting again.
            for notify in self.conn.notifies(timeout=0.0):
                self._add(events, notify.payload)
        except psycopg.OperationalError:
            self._reconnect()
        return events

    @staticmethod
    def _add(events: list[Event], payload: str) -> None:
        event = Event.decode(payload)
        if event is not None:
            events.append(event)

    def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        try:
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
            self.conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.OperationalError:
            pass  # the caller's polling fallback carries on until the server is back

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class PostgresBus:
    def __init__(self, sqlalchemy_url: str) -> None:
        self.conninfo = _conninfo(sqlalchemy_url)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        with self._lock:
            for _ in range(2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.conninfo, autocommit=True)
                    self._conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, event.encode()))
                    return
                except psycopg.OperationalError:
                    self._conn = None  # reconnect once; polling covers a lost wake-up

    def subscribe(self) -> PostgresSubscription:
        return PostgresSubscription(self.conninfo)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
