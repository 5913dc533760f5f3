"""Browser sessions the API provisions (``POST /browsers``): a browser for a person or a tool
outside any job — a CDP endpoint on this host, or a pod on Kubernetes — ended by ``DELETE`` or
after its time to live. Jobs' own sessions come from their workers and are only listed here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from botyard.browsers import sweeper
from botyard.browsers.base import new_session_id
from botyard.browsers.cdp import launch_cdp
from botyard.errors import BrowserError
from botyard.settings import BrowserSettings
from botyard.store.sql import SqlStore

log = logging.getLogger("botyard.browsers")
_POD_SWEEP_INTERVAL = 60.0
_LEAK_SWEEP_INTERVAL = 30.0


class NotOurSession(BrowserError):
    """The session belongs to a job or to another orchestrator replica."""


@dataclass
class _Held:
    record: dict[str, Any]
    stop: Callable[[], None]
    expires: float
    pod: str | None = None


class BrowserHost:
    """The sessions this orchestrator replica provisioned, and their clean-up."""

    def __init__(self, settings: BrowserSettings, store: SqlStore, owner: str) -> None:
        self.settings = settings
        self.store = store
        self.owner = owner
        self._held: dict[str, _Held] = {}
        self._pods: Any = None  # BrowserPods, with BROWSER_PROVIDER=kubernetes
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._close_orphans()
        self._reaper = threading.Thread(target=self._reap, name="botyard-browser-ttl", daemon=True)
        self._reaper.start()

    def provision(self, ttl: float | None = None) -> dict[str, Any]:
        if not self.settings.api_sessions:
            raise BrowserError(
                "browser sessions through the API are off: set BROWSER_API_SESSIONS=true (the "
                "browser answers anyone who can reach its port: this host, or the cluster)"
            )
        ttl = ttl or self.settings.idle_ttl
        started = time.perf_counter()
        session_id = new_session_id()
        endpoint, pid, stop, pod = self._start(session_id)
        record = {
            "id": session_id,
            "provider": self.settings.provider,
            "kind": "cdp" if self.settings.provider == "local" else "playwright",
            "endpoint": endpoint,
            "pid": pid,
            "ready_seconds": time.perf_counter() - started,
            "started_at": time.time(),
        }
        self.store.browsers.add(record, self.owner)
        with self._lock:
            self._held[session_id] = _Held(record, stop, time.monotonic() + ttl, pod)
        return record

    def _start(self, session_id: str) -> tuple[str, int | None, Callable[[], None], str | None]:
        s = self.settings
        if s.provider == "local":
            browser = launch_cdp(s.executable, headless=s.headless, extra=s.args)
            return browser.endpoint, browser.pid, browser.stop, None
        if s.provider == "kubernetes":
            pods = self.pods()
            pod, service = pods.create(session_id, None)
            try:
                pods.wait_ready(pod, s.k8s_ready_timeout)
            except Exception:
                pods.delete(pod, service)
                raise
            return pods.endpoint(service), None, lambda: pods.delete(pod, service), pod
        raise BrowserError(
            "BROWSER_PROVIDER=remote: the browser is already at BROWSER_REMOTE_URL; connect to it"
        )

    def pods(self) -> Any:
        if self._pods is None:
            from botyard.browsers.kubernetes import KubernetesProvider

            self._pods = KubernetesProvider.from_settings(self.settings).pods
        return self._pods

    def sweep_pods(self) -> list[str]:
        """Browser pods idle past their TTL, or whose job no longer runs (the store knows)."""
        running = {str(job_id) for job_id in self.store.browsers.running_jobs()}
        with self._lock:
            held = [h.pod for h in self._held.values() if h.pod]
        for pod in held:  # this replica's own sessions are in use until their TTL
            with contextlib.suppress(BrowserError):
                self.pods().touch(pod)
        swept: list[str] = self.pods().sweep(self.settings.idle_ttl, running)
        if swept:
            log.info("browser pods swept: %s", ", ".join(swept))
        return swept

    def terminate(self, session_id: str) -> bool:
        """End a session this replica provisioned; False if there is no such open session."""
        with self._lock:
            held = self._held.pop(session_id, None)
        if held is None:
            record = self.store.browsers.get(session_id)
            if record is None or record["status"] != "open":
                return False
            if record["job_id"] is not None:
                raise NotOurSession(
                    f"browser session {session_id} belongs to job {record['job_id']}: "
                    f"cancel the job to end it (POST /jobs/{record['job_id']}/cancel)"
                )
            raise NotOurSession(
                f"browser session {session_id} was provisioned by {record['owner']}; "
                "ask that orchestrator replica"
            )
        self._end(session_id, held)
        return True

    def _end(self, session_id: str, held: _Held) -> None:
        try:
            held.stop()
        finally:
            self.store.browsers.close(session_id)

    def _close_orphans(self) -> None:
        """Sessions an earlier orchestrator process on this host provisioned and never ended
        (it crashed): their browsers are leaks, killed by the sweeper; their rows close here."""
        prefix = self.owner.rsplit(":", 1)[0] + ":"
        for row in self.store.browsers.open():
            owner = row["owner"] or ""
            if row["job_id"] is None and owner.startswith(prefix) and owner != self.owner:
                pid = owner.rsplit(":", 1)[1]
                if not (pid.isdigit() and psutil.pid_exists(int(pid))):
                    self.store.browsers.close(row["id"])

    def _sweep_leaks(self) -> None:
        leaks = sweeper.sweep()
        self.store.browsers.add_leaks(
            self.owner,
            [
                (f"leak-{leak.pid}-{leak.started_at:.0f}", leak.pid, leak.started_at)
                for leak in leaks
            ],
        )

    def _reap(self) -> None:
        next_pod_sweep = time.monotonic() + _POD_SWEEP_INTERVAL
        next_leak_sweep = time.monotonic()
        while not self._stopped.wait(5.0):
            now = time.monotonic()
            if self.settings.provider == "local" and now >= next_leak_sweep:
                next_leak_sweep = now + _LEAK_SWEEP_INTERVAL
                try:
                    self._sweep_leaks()
                except Exception:
                    log.exception("browser sweep failed")
            if self.settings.provider == "kubernetes" and now >= next_pod_sweep:
                next_pod_sweep = now + _POD_SWEEP_INTERVAL
                try:
                    self.sweep_pods()
                except Exception:
                    log.exception("browser pod sweep failed")
            with self._lock:
                expired = [(k, h) for k, h in self._held.items() if h.expires <= now]
                for key, _held in expired:
                    del self._held[key]
            for key, held in expired:
                log.info("browser session %s reached its time to live", key)
                try:
                    self._end(key, held)
                except Exception:
                    log.exception("browser session %s did not end cleanly", key)

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            held, self._held = dict(self._held), {}
        for key, item in held.items():
            try:
                self._end(key, item)
            except Exception:
                log.exception("browser session %s did not end cleanly", key)
