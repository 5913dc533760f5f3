"""One standby task: validate it, download its script, run it with its payload in a JSON file."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botyard.errors import StandbyError, TaskBusy, TaskRejected
from botyard.own_secrets import without_secrets
from botyard.processes import kill_tree
from botyard.settings import StandbySettings
from botyard.standby.fetch import check_url, fetch, safe_url

log = logging.getLogger("botyard.standby")

# A plain file name: no directory, no leading dot, nothing a shell or a path would interpret.
_SCRIPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.py$")


class Recorder(Protocol):
    """Where tasks are recorded as jobs (the orchestrator), if anywhere."""

    def started(self, task: Task) -> Any: ...

    def finished(self, recorded: Any, outcome: TaskOutcome) -> None: ...


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    script_url: str
    script_name: str
    payload: dict[str, Any]


@dataclass(slots=True)
class TaskOutcome:
    task: Task
    started_at: datetime
    finished_at: datetime | None = None
    succeeded: bool | None = None  # None while it runs
    exit_code: int | None = None
    error: str | None = None
    timed_out: bool = False
    result: Any = None
    output_tail: list[str] = field(default_factory=list)


def parse_task(body: Any, settings: StandbySettings) -> Task:
    """Check a ``POST /task`` body; raises ``TaskRejected`` with what is wrong."""
    if not isinstance(body, dict):
        raise TaskRejected("the body must be a JSON object")
    unknown = set(body) - {"script_url", "script_name", "payload"}
    if unknown:
        raise TaskRejected(f"unknown fields: {', '.join(sorted(unknown))}")
    url, name, payload = body.get("script_url"), body.get("script_name"), body.get("payload", {})
    if not isinstance(url, str) or not url:
        raise TaskRejected("script_url is required (an https:// URL)")
    if not isinstance(name, str) or not _SCRIPT_NAME.fullmatch(name) or ".." in name:
        raise TaskRejected(
            "script_name must be a plain file name ending in .py (letters, digits, . _ -)"
        )
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise TaskRejected("payload must be a JSON object")
    size = len(json.dumps(payload).encode())
    if size > settings.max_payload_bytes:
        raise TaskRejected(f"payload is {size} bytes; at most {settings.max_payload_bytes}")
    check_url(url, allow_private=settings.allow_private_urls)
    return Task(uuid.uuid4().hex, url, name, payload)


class TaskRunner:
    """Runs at most one task at a time, in a thread of its own; reports its end to ``on_end``."""

    def __init__(
        self,
        settings: StandbySettings,
        on_end: Callable[[TaskOutcome], None] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.on_end = on_end
        self.recorder = recorder
        self.current: TaskOutcome | None = None
        self.last: TaskOutcome | None = None
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    @property
    def executing(self) -> bool:
        return self.current is not None

    def start(self, task: Task) -> TaskOutcome:
        """Start ``task`` now; raises ``TaskBusy`` while another one runs."""
        with self._lock:
            if self.current is not None:
                raise TaskBusy(f"task {self.current.task.id} is executing")
            self.current = TaskOutcome(task, started_at=datetime.now(UTC))
            outcome = self.current
        threading.Thread(target=self._run, args=(outcome,), name="botyard-task").start()
        return outcome

    def _run(self, outcome: TaskOutcome) -> None:
        task = outcome.task
        recorded: Any = None
        try:
            recorded = self.recorder.started(task) if self.recorder else None
            log.info("task %s: fetching %s", task.id, safe_url(task.script_url))
            self._execute(outcome)
        except StandbyError as exc:
            outcome.succeeded, outcome.error = False, str(exc)
        except Exception as exc:  # the server must answer and exit cleanly whatever happens
            log.exception("task %s failed unexpectedly", task.id)
            outcome.succeeded, outcome.error = False, f"{type(exc).__name__}: {exc}"
        finally:
            if outcome.succeeded is None:  # interrupted (the server is stopping)
                outcome.succeeded = False
                outcome.error = outcome.error or "interrupted"
            outcome.finished_at = datetime.now(UTC)
            self._end(outcome, recorded)

    def _end(self, outcome: TaskOutcome, recorded: Any) -> None:
        assert outcome.finished_at is not None
        took = (outcome.finished_at - outcome.started_at).total_seconds()
        log.info(
            "task %s %s in %.1f s%s",
            outcome.task.id,
            "succeeded" if outcome.succeeded else "failed",
            took,
            f": {outcome.error}" if outcome.error else "",
        )
        try:
            if self.recorder is not None and recorded is not None:
                self.recorder.finished(recorded, outcome)
        except Exception:
            log.exception("task %s: recording its outcome failed", outcome.task.id)
        finally:
            with self._lock:
                self.current, self.last, self._process = None, outcome, None
            if self.on_end is not None:
                self.on_end(outcome)

    def interrupt(self, wait: float = 30.0) -> TaskOutcome | None:
        """Kill the running script (the server is stopping) and wait for its end to be recorded."""
        with self._lock:
            current, process = self.current, self._process
        if current is None:
            return None
        current.error = "interrupted: the standby server is stopping"
        if process is not None:
            kill_tree(process.pid)
        deadline = time.monotonic() + wait
        while self.current is current and time.monotonic() < deadline:
            time.sleep(0.05)
        return current

    def _execute(self, outcome: TaskOutcome) -> None:
        task, settings = outcome.task, self.settings
        script = fetch(
            task.script_url,
            max_bytes=settings.max_script_bytes,
            timeout=settings.download_timeout,
            allow_private=settings.allow_private_urls,
            ca_bundle=settings.ca_bundle,
        )
        with tempfile.TemporaryDirectory(prefix=f"botyard-task-{task.id[:8]}-") as tmp:
            folder = Path(tmp)
            (folder / task.script_name).write_bytes(script)
            payload_file, result_file = folder / "payload.json", folder / "result.json"
            payload_file.write_text(json.dumps(task.payload))
            env = {  # the script is not to be trusted with Botyard's keys
                **without_secrets(os.environ),
                "BOTYARD_PAYLOAD_FILE": str(payload_file),
                "BOTYARD_RESULT_FILE": str(result_file),
                "BOTYARD_TASK_ID": task.id,
            }
            code = self._spawn(outcome, [sys.executable, task.script_name], folder, env)
            outcome.exit_code = code
            if result_file.exists():
                try:
                    outcome.result = json.loads(result_file.read_text())
                except ValueError:
                    outcome.error = "the result file is not JSON"
        outcome.succeeded = code == 0 and outcome.error is None
        if code != 0 and outcome.error is None:
            outcome.error = f"{task.script_name} exited with code {code}"

    def _spawn(
        self, outcome: TaskOutcome, command: list[str], cwd: Path, env: dict[str, str]
    ) -> int:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout kills all it started
        )
        with self._lock:
            self._process = proc
        reader = threading.Thread(target=self._relay, args=(proc, outcome), daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=self.settings.timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
            outcome.error = f"timed out after {self.settings.timeout:g} s (WORKER_TIMEOUT)"
            outcome.timed_out = True
            code = -9
        finally:
            kill_tree(proc.pid)  # whatever it left running in its group goes too
        reader.join(5)
        return code

    @staticmethod
    def _relay(proc: subprocess.Popen[str], outcome: TaskOutcome) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            log.info("task %s | %s", outcome.task.id[:8], line)
            outcome.output_tail = [*outcome.output_tail[-19:], line]
