"""``JobContext``: what an automation sees of its job while it runs in a child process."""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from botyard.errors import LeaseLost

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._\-]+")


class Channel(Protocol):
    """The child's line to its worker: fire-and-forget messages and acknowledged requests."""

    def send(self, message: tuple[Any, ...]) -> None: ...

    def request(self, message: tuple[Any, ...]) -> Any: ...


def _orchestrator() -> tuple[str, dict[str, str]]:
    """The orchestrator's URL and the worker token's header, from the worker's environment."""
    base = os.environ.get("BOTYARD_URL", "http://127.0.0.1:8620").rstrip("/")
    token = os.environ.get("BOTYARD_WORKER_TOKEN", "")
    return base, {"Authorization": f"Bearer {token}"}


class _JobLogHandler(logging.Handler):
    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # a bad format string must not kill the job
            message = str(record.msg)
        self.channel.send(("log", record.levelname, message, record.created))


class JobContext:
    """The running job: its id, attempt, payload, logger, steps, side effects and evidence."""

    def __init__(
        self,
        *,
        job_id: int,
        attempt: int,
        automation: str,
        payload: dict[str, Any],
        evidence_dir: Path,
        channel: Channel,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.automation = automation
        self.payload = payload
        self.evidence_dir = evidence_dir
        self._channel = channel
        self._step: str | None = None
        self._totp: tuple[str, str | None] | None = None
        self.log = logging.getLogger(f"botyard.job.{automation}")
        self.log.propagate = False
        self.log.setLevel(logging.DEBUG)
        for handler in list(self.log.handlers):
            self.log.removeHandler(handler)
        self.log.addHandler(_JobLogHandler(channel))

    @property
    def logger(self) -> logging.Logger:
        return self.log

    @property
    def current_step(self) -> str | None:
        return self._step

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Report progress: ``with ctx.step("logging in"):`` — shown on the job as it runs."""
        previous, self._step = self._step, name
        self._channel.send(("step_start", name, time.time()))
        status = "failed"
        try:
            yield
            status = "done"
        finally:
            self._channel.send(("step_end", name, status, time.time()))
            self._step = previous

    @contextlib.contextmanager
    def side_effect(self, name: str) -> Iterator[None]:
        """Mark where the automation starts changing the outside world.

        The mark is stored before the block runs. Should the attempt be lost from here on, the
        job goes to ``needs_review`` instead of running again, unless it is ``idempotent``.
        """
        if not self._channel.request(("side_effect", name, time.time())):
            raise LeaseLost(f"job {self.job_id} attempt {self.attempt} lost its lease")
        status = "failed"
        try:
            yield
            status = "done"
        finally:
            self._channel.send(("step_end", name, status, time.time()))

    def totp(self, provider: str, account: str | None = None, *, timeout: float = 90.0) -> str:
        """A fresh TOTP code from the orchestrator, whose time step no other job received.

        The secret stays with the orchestrator (``BOTYARD_URL``); the worker's
        ``BOTYARD_WORKER_TOKEN`` authorises the call. It may wait up to one time step.
        """
        import httpx

        base, headers = _orchestrator()
        body: dict[str, Any] = {"job_id": self.job_id}
        if account:
            body["account"] = account
        answer = httpx.post(
            f"{base}/totp/{provider}/code", json=body, headers=headers, timeout=timeout
        )
        if answer.status_code != 200:
            detail = answer.json().get("detail") if answer.content else answer.reason_phrase
            raise RuntimeError(f"no TOTP code for {provider}: HTTP {answer.status_code} {detail}")
        code = answer.json()
        self._totp = (provider, account)
        self.log.info(
            "TOTP code for %s (time step %s, %.0f s left)",
            provider,
            code["time_step"],
            code["valid_for"],
        )
        return str(code["code"])

    def totp_consumed(self, success: bool) -> None:
        """Tell the orchestrator whether the portal accepted the last code (its success rate)."""
        if self._totp is None:
            return
        import httpx

        provider, account = self._totp
        base, headers = _orchestrator()
        with contextlib.suppress(httpx.HTTPError):  # a figure, not the job's business
            httpx.post(
                f"{base}/totp/{provider}/consumed",
                json={"account": account, "success": success} if account else {"success": success},
                headers=headers,
                timeout=10,
            )

    def attach(self, name: str, data: bytes | str, content_type: str | None = None) -> Path:
        """Keep a file as evidence of this attempt (and of the current step)."""
        safe = _SAFE_NAME.sub("_", name).strip("._") or "evidence"
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        path = self.evidence_dir / safe
        counter = 1
        while path.exists():
            path = self.evidence_dir / f"{Path(safe).stem}-{counter}{Path(safe).suffix}"
            counter += 1
        raw = data.encode() if isinstance(data, str) else data
        path.write_bytes(raw)
        kind = content_type or mimetypes.guess_type(safe)[0] or "application/octet-stream"
        self._channel.send(
            ("evidence", path.name, str(path), kind, len(raw), self._step, time.time())
        )
        return path
