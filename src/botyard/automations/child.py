"""The child process an automation runs in: one job at a time, reused until it is killed.

Started by its supervisor (``automations/supervisor.py``) with
``python -m botyard.automations.child FD SUPERVISOR_PID``, in the supervisor's session, so that
a timeout or a cancel kills it together with everything the job started, and so does the end
of its worker.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from pydantic_core import to_jsonable_python

from botyard.automations.browsing import JobBrowsers, describe
from botyard.automations.context import JobContext
from botyard.automations.registry import Automation, Registry, load_automations
from botyard.browsers import Kind
from botyard.credentials import Credentials
from botyard.errors import BotyardError, BusinessError, LeaseLost, PayloadInvalid
from botyard.jobs import Outcome
from botyard.masking import Masker
from botyard.settings import Settings

_TRACEBACK_LIMIT = 8000
_PR_SET_PDEATHSIG = 1


class PipeChannel:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def request(self, message: tuple[Any, ...]) -> Any:
        self.conn.send(message)
        reply = self.conn.recv()
        if not (isinstance(reply, tuple) and reply and reply[0] == "reply"):
            raise BotyardError(f"unexpected message from the worker: {reply!r}")
        return reply[1]


class _JobOutput(io.TextIOBase):
    """``print`` inside a job becomes a log line of the job."""

    def __init__(self, channel: PipeChannel, level: str, masker: Masker) -> None:
        self.channel = channel
        self.level = level
        self.masker = masker
        self.buffer_text = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer_text += text
        while "\n" in self.buffer_text:
            line, self.buffer_text = self.buffer_text.split("\n", 1)
            self.channel.send(("log", self.level, self.masker.mask(line), time.time()))
        return len(text)

    def flush(self) -> None:
        if self.buffer_text:
            self.channel.send(("log", self.level, self.masker.mask(self.buffer_text), time.time()))
            self.buffer_text = ""


def _error(exc: BaseException, kind: str | None = None) -> dict[str, Any]:
    text = "".join(traceback.format_exception(exc))
    return {
        "type": kind or type(exc).__name__,
        "message": str(exc),
        "traceback": text[-_TRACEBACK_LIMIT:],
    }


def run_function(item: Automation, ctx: JobContext) -> tuple[Outcome, Any, dict[str, Any] | None]:
    assert item.func is not None
    try:
        kwargs = item.kwargs(ctx.payload)
    except PayloadInvalid as exc:
        # A payload that was valid at submission but no longer is: retrying will not help.
        return Outcome.BUSINESS_ERROR, None, {"type": "PayloadInvalid", "message": str(exc.errors)}
    try:
        result = item.func(ctx, **kwargs)
    except BusinessError as exc:
        return Outcome.BUSINESS_ERROR, None, _error(exc)
    except LeaseLost as exc:
        return Outcome.CANCELLED, None, _error(exc)
    except Exception as exc:
        ctx.log.error("%s: %s", type(exc).__name__, exc)
        return Outcome.ERROR, None, _error(exc)
    try:
        json.dumps(to_jsonable_python(result))
        return Outcome.SUCCEEDED, to_jsonable_python(result), None
    except (TypeError, ValueError) as exc:
        return Outcome.ERROR, None, _error(exc, "ResultNotJSON")


def run_script(item: Automation, ctx: JobContext) -> tuple[Outcome, Any, dict[str, Any] | None]:
    """Run a standalone script with its payload in a JSON file; exit 0 means success."""
    assert item.script is not None
    with tempfile.TemporaryDirectory(prefix=f"botyard-job-{ctx.job_id}-") as tmp:
        payload_file = Path(tmp) / "payload.json"
        result_file = Path(tmp) / "result.json"
        payload_file.write_text(json.dumps(ctx.payload))
        env = {
            **os.environ,
            "BOTYARD_PAYLOAD_FILE": str(payload_file),
            "BOTYARD_RESULT_FILE": str(result_file),
            "BOTYARD_EVIDENCE_DIR": str(ctx.evidence_dir),
            "BOTYARD_JOB_ID": str(ctx.job_id),
            "BOTYARD_ATTEMPT": str(ctx.attempt),
        }
        if ctx.credential:  # beside BOTYARD_URL: the script's own TOTP calls
            # Imported here: PyJWT, which the module needs, adds ~35 ms to every child's start.
            from botyard.attempt_credentials import ENV_VAR

            env[ENV_VAR] = ctx.credential
        proc = subprocess.Popen(
            [sys.executable, str(item.script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=item.script.parent,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            ctx.log.info("%s", line.rstrip("\n"))
        code = proc.wait()
        result = json.loads(result_file.read_text()) if result_file.exists() else None
    if code == 0:
        return Outcome.SUCCEEDED, result, None
    error = {"type": "ScriptFailed", "message": f"{item.script.name} exited with code {code}"}
    return Outcome.ERROR, None, error


def serve(conn: Connection, registry: Registry) -> None:
    channel = PipeChannel(conn)
    stdout, stderr = sys.stdout, sys.stderr
    # The child's own composition root: it reads the environment the worker passed on.
    settings = Settings()
    masker = Masker.from_environment()
    masker.extend(Masker.from_settings(settings))
    credentials = Credentials.from_settings(settings.credentials, masker)
    # No browser until a job asks for one: after that job the next one's is kept ready.
    browsers = JobBrowsers(settings.browser)
    while True:
        try:
            if not conn.poll(settings.browser.idle_ttl):
                browsers.idle()
                continue
            message = conn.recv()
        except (EOFError, OSError):
            browsers.close()
            return  # the worker is gone
        if message[0] != "run":
            continue
        job = message[1]
        started = time.time()
        sys.stdout = _JobOutput(channel, "INFO", masker)
        sys.stderr = _JobOutput(channel, "WARNING", masker)
        try:
            outcome, result, error = run_job(job, registry, channel, masker, credentials, browsers)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = stdout, stderr
        if masker:  # no secret leaves the job: not in its error, not in its result
            error, result = masker.mask_json(error), masker.mask_json(result)
        conn.send(("done", outcome.value, result, error, started))
        browsers.prepare()  # off the job's clock: the next job finds a ready page


def run_job(
    job: dict[str, Any],
    registry: Registry,
    channel: PipeChannel,
    masker: Masker,
    credentials: Credentials,
    browsers: JobBrowsers,
) -> tuple[Outcome, Any, dict[str, Any] | None]:
    """Provision the job's browser if it wants one, run it, keep failure evidence, release."""
    ctx = JobContext(
        job_id=job["id"],
        attempt=job["attempt"],
        automation=job["automation"],
        payload=job["payload"],
        evidence_dir=Path(job["evidence_dir"]),
        channel=channel,
        masker=masker,
        credentials=credentials,
        credential=job.get("credential"),
    )
    try:
        item = registry.get(job["automation"])
    except BotyardError as exc:
        return Outcome.BUSINESS_ERROR, None, _error(exc)
    if item.browser is not None:
        try:
            ctx.browser = browsers.provision(ctx.job_id, cast(Kind, item.browser))
        except Exception as exc:  # no browser: an infrastructure error, retried as usual
            ctx.log.error("no browser for the job: %s", exc)
            return Outcome.ERROR, None, _error(exc, "BrowserUnavailable")
        channel.send(("browser", describe(ctx.browser, "open"), time.time()))
    runner = run_script if item.script is not None else run_function
    outcome, result, error = runner(item, ctx)
    if ctx.browser is not None:
        browsers.release(ctx, ctx.browser, outcome)
        channel.send(("browser", describe(ctx.browser, "closed"), time.time()))
    return outcome, result, error


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel kill this child when its supervisor dies, even by SIGKILL.

    Without it a killed supervisor would leave a job running that nobody holds a lease on.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the worker died before the line above took effect
        os._exit(1)


def main() -> None:
    _die_with_parent(int(sys.argv[2]))
    fd = int(sys.argv[1])
    # Nothing the job starts may hold our end: the worker must see its end of file when we end.
    os.set_inheritable(fd, False)
    conn = Connection(fd)
    modules, scripts = conn.recv()
    try:
        registry = load_automations(modules, scripts)
    except Exception as exc:
        conn.send(("init_failed", f"{type(exc).__name__}: {exc}"))
        sys.exit(2)
    conn.send(("ready", os.getpid()))
    serve(conn, registry)


if __name__ == "__main__":
    main()
