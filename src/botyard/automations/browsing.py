"""A job's browser in the child process: provisioned before, evidence on failure, released after."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from botyard.automations.context import JobContext
from botyard.browsers import BrowserProvider, BrowserSession, Kind, open_provider
from botyard.jobs import Outcome
from botyard.masking import Masker
from botyard.settings import BrowserSettings

log = logging.getLogger("botyard.browsers")


class JobBrowsers:
    """The child's browser provider, made on first use and kept (warm) between jobs."""

    def __init__(self, settings: BrowserSettings) -> None:
        self.settings = settings
        self._provider: BrowserProvider | None = None
        self._last_kind: Kind | None = None

    @property
    def provider(self) -> BrowserProvider:
        if self._provider is None:
            self._provider = open_provider(self.settings)
        return self._provider

    def provision(self, job_id: int, kind: Kind) -> BrowserSession:
        session = self.provider.provision(job_id, kind)
        self._last_kind = kind
        if self.settings.trace_on_failure and session.context is not None:
            with contextlib.suppress(Exception):
                session.context.tracing.start(screenshots=True, snapshots=True)
                session.details["tracing"] = True
        return session

    def release(self, ctx: JobContext, session: BrowserSession, outcome: Outcome) -> None:
        """Keep the failure evidence (screenshot, HTML, trace), then end the session."""
        if outcome not in (Outcome.SUCCEEDED, Outcome.CANCELLED):
            failure_evidence(ctx, session)
        elif session.details.pop("tracing", False):
            with contextlib.suppress(Exception):
                session.context.tracing.stop()
        try:
            self.provider.terminate(session)
        except Exception as exc:  # the job's outcome stands; the sweeper ends what is left
            log.warning("browser session %s did not end cleanly: %s", session.id, exc)

    def prepare(self) -> None:
        """Between jobs: warm the next browser of the kind the last job used."""
        prepare = getattr(self._provider, "prepare", None)
        if prepare is not None and self._last_kind is not None:
            prepare(self._last_kind)

    def idle(self) -> None:
        if self._provider is not None:
            self._provider.cleanup_idle()

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()


def failure_evidence(ctx: JobContext, session: BrowserSession) -> None:
    """The page as the failure left it: a screenshot, its HTML and, if enabled, a trace."""
    step = ctx.failed_step or ctx.current_step
    with ctx.in_step(step):
        _capture(ctx, session)
    if session.details.pop("tracing", False):
        _keep_trace(ctx, session.context)


def _capture(ctx: JobContext, session: BrowserSession) -> None:
    try:
        if session.driver is not None:
            ctx.attach("failure.png", session.driver.get_screenshot_as_png(), "image/png")
            ctx.attach("failure.html", session.driver.page_source, "text/html")
        elif session.page is not None:
            ctx.attach("failure.png", session.page.screenshot(full_page=True), "image/png")
            ctx.attach("failure.html", session.page.content(), "text/html")
    except Exception as exc:  # a crashed page has nothing to show; say so instead
        ctx.log.warning("no failure screenshot: %s", exc)


def _keep_trace(ctx: JobContext, context: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="botyard-trace-") as tmp:
        path = Path(tmp) / "trace.zip"
        try:
            context.tracing.stop(path=str(path))
            ctx.attach("trace.zip", masked_zip(path.read_bytes(), ctx.masker), "application/zip")
        except Exception as exc:
            ctx.log.warning("no Playwright trace: %s", exc)


def masked_zip(data: bytes, masker: Masker) -> bytes:
    """The zip with every secret masked in its text entries: a trace records what was typed
    (``page.fill("#password", …)``) and what was sent."""
    if not masker:
        return data
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            raw = source.read(entry)
            with contextlib.suppress(UnicodeDecodeError):  # images and other binaries stay
                raw = masker.mask(raw.decode("utf-8")).encode()
            target.writestr(entry, raw)
    return out.getvalue()


def describe(session: BrowserSession, state: str) -> dict[str, Any]:
    return {**session.describe(), "state": state, "at": time.time()}
