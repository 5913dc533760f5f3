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
from typing import TYPE_CHECKING, Any, Protocol

from botyard.errors import AutomationError, ConfigurationError, LeaseLost
from botyard.masking import Masker

if TYPE_CHECKING:
    from botyard.browsers.base import BrowserSession
    from botyard.credentials import Credentials

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._\-]+")
_MAX_NAME = 200  # well under a file system's 255 bytes, room for a "-N" counter


class Channel(Protocol):
    """The child's line to its worker: fire-and-forget messages and acknowledged requests."""

    def send(self, message: tuple[Any, ...]) -> None: ...

    def request(self, message: tuple[Any, ...]) -> Any: ...


def _orchestrator(credential: str | None) -> tuple[str, dict[str, str]]:
    """The orchestrator's URL (``BOTYARD_URL``) and the attempt's credential as the bearer."""
    if not credential:
        raise ConfigurationError(
            "the orchestrator's TOTP codes need BOTYARD_WORKER_TOKEN: set the same token for "
            "the worker and the orchestrator"
        )
    base = os.environ.get("BOTYARD_URL", "http://127.0.0.1:8620").rstrip("/")
    return base, {"Authorization": f"Bearer {credential}"}


class _JobLogHandler(logging.Handler):
    def __init__(self, channel: Channel, masker: Masker) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel
        self.masker = masker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # a bad format string must not kill the job
            message = str(record.msg)
        self.channel.send(("log", record.levelname, self.masker.mask(message), record.created))


def _is_text(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type in (
        "application/json",
        "application/xml",
        "application/xhtml+xml",
    )


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
        masker: Masker | None = None,
        credentials: Credentials | None = None,
        browser: BrowserSession | None = None,
        credential: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.automation = automation
        self.payload = payload
        self.evidence_dir = evidence_dir
        self._channel = channel
        self._step: str | None = None
        self.failed_step: str | None = None
        self._totp: tuple[str, str | None] | None = None
        # Every secret the job can see is masked in its logs and its text evidence.
        self.masker = masker if masker is not None else Masker()
        self._credentials = credentials
        # This attempt's own credential (attempt_credentials): what the orchestrator accepts
        # from a job's process, and only while this attempt runs.
        self.credential = credential
        self.browser = browser
        self.log = logging.getLogger(f"botyard.job.{automation}")
        self.log.propagate = False
        self.log.setLevel(logging.DEBUG)
        for handler in list(self.log.handlers):
            self.log.removeHandler(handler)
        self.log.addHandler(_JobLogHandler(channel, self.masker))

    @property
    def logger(self) -> logging.Logger:
        return self.log

    @property
    def credentials(self) -> Credentials:
        """Configuration and secrets: environment, mounted Secrets and ConfigMaps."""
        if self._credentials is None:
            from botyard.credentials import Credentials, EnvironmentSource

            self._credentials = Credentials([EnvironmentSource()], self.masker)
        return self._credentials

    @property
    def page(self) -> Any:
        """The job's Playwright ``Page`` (``@automation(..., browser="playwright")``)."""
        if self.browser is None or self.browser.page is None:
            raise AutomationError(f"{self.automation} has no Playwright page: browser='playwright'")
        return self.browser.page

    @property
    def driver(self) -> Any:
        """The job's Selenium ``WebDriver`` (``@automation(..., browser="selenium")``)."""
        if self.browser is None or self.browser.driver is None:
            raise AutomationError(f"{self.automation} has no Selenium driver: browser='selenium'")
        return self.browser.driver

    def screenshot(self, name: str = "screenshot", *, full_page: bool = True) -> Path:
        """A PNG of the job's browser as it is now, kept as evidence of the current step."""
        if self.browser is None:
            raise AutomationError(f"{self.automation} has no browser to take a screenshot of")
        if self.browser.driver is not None:
            data: bytes = self.browser.driver.get_screenshot_as_png()
        else:
            data = self.page.screenshot(full_page=full_page)
        filename = name if name.lower().endswith(".png") else f"{name}.png"
        return self.attach(filename, data, "image/png")

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
        except BaseException:
            self.failed_step = self.failed_step or name  # the innermost step that failed
            raise
        finally:
            self._channel.send(("step_end", name, status, time.time()))
            self._step = previous

    @contextlib.contextmanager
    def in_step(self, name: str | None) -> Iterator[None]:
        """Attach what the block keeps to step ``name`` without reporting a new step."""
        previous, self._step = self._step, name
        try:
            yield
        finally:
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

        The secret stays with the orchestrator (``BOTYARD_URL``); the attempt's own credential
        authorises the call (the worker derives it from ``BOTYARD_WORKER_TOKEN``, which the job
        never sees). It may wait up to one time step.
        """
        import httpx

        base, headers = _orchestrator(self.credential)
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
        base, headers = _orchestrator(self.credential)
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
        if len(safe) > _MAX_NAME:  # cut the stem, keep a short suffix: the type stays known
            suffix = Path(safe).suffix[:16]
            safe = safe[: _MAX_NAME - len(suffix)] + suffix
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        path = self.evidence_dir / safe
        counter = 1
        while path.exists():
            path = self.evidence_dir / f"{Path(safe).stem}-{counter}{Path(safe).suffix}"
            counter += 1
        kind = content_type or mimetypes.guess_type(safe)[0] or "application/octet-stream"
        if isinstance(data, str) or _is_text(kind):
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            raw = self.masker.mask(text).encode()
        else:
            raw = data
        path.write_bytes(raw)
        self._channel.send(
            ("evidence", path.name, str(path), kind, len(raw), self._step, time.time())
        )
        return path
