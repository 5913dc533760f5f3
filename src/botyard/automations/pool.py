"""The worker's side of a job process: start it, talk to it, kill it with its whole tree.

Each slot's job process runs under a supervisor of its own (``automations/supervisor.py``),
which holds the read end of a lifeline pipe: the worker writes until when the running job's
lease is held, and the pipe's end of file tells the supervisor the worker is gone.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from botyard.automations.supervisor import RECORD
from botyard.errors import AutomationError
from botyard.own_secrets import without_secrets
from botyard.processes import kill_tree

_SUPERVISOR = str(Path(__file__).with_name("supervisor.py"))


def job_environment(environ: Mapping[str, str], tmpdir: str) -> dict[str, str]:
    """The environment of a job's processes: the worker's, less Botyard's own secrets."""
    env = without_secrets(environ)
    env["TMPDIR"] = tmpdir
    return env


class ChildProcess:
    """One reusable job process under its supervisor; :meth:`kill` ends both and everything
    the running job started."""

    def __init__(self, modules: list[str], scripts: list[str]) -> None:
        parent_sock, child_sock = socket.socketpair()
        # Both ends are close-on-exec here: only the supervisor gets the read end, and no other
        # process ever holds the write end, so its end of file means this worker is gone.
        lifeline_read, self._lifeline = os.pipe()
        os.set_blocking(self._lifeline, False)  # a stuck supervisor never blocks the worker
        self._lifeline_lock = threading.Lock()  # never a write to a closed (reused) fd number
        # The child's own temporary folder: what a killed job leaves there (Playwright's
        # profiles and artifacts, a script's files) is removed with the child.
        self.tmpdir = tempfile.mkdtemp(prefix="botyard-child-")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-P",  # nothing from the supervisor's folder shadows what it imports
                _SUPERVISOR,
                str(child_sock.fileno()),
                str(lifeline_read),
                str(os.getpid()),
            ],
            pass_fds=[child_sock.fileno(), lifeline_read],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            env=job_environment(os.environ, self.tmpdir),
        )
        child_sock.close()
        os.close(lifeline_read)
        self.conn = Connection(parent_sock.detach())
        self.conn.send((modules, scripts))
        self._ready = False
        self._kill_at = math.inf  # the running attempt's fence, as last told the supervisor

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the child has imported the automations (once)."""
        if self._ready:
            return
        if not self.conn.poll(timeout):
            self.kill()
            raise AutomationError("the automation process did not start in time")
        try:
            message = self.conn.recv()
        except EOFError:
            raise AutomationError(
                f"the automation process exited at start (code {self.proc.wait()})"
            ) from None
        if message[0] != "ready":
            self.kill()
            raise AutomationError(f"the automations could not be loaded: {message[1]}")
        self._ready = True

    def send(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def poll(self, timeout: float | None) -> bool:
        return self.conn.poll(timeout)

    def recv(self) -> Any:
        return self.conn.recv()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def lease(self, job_id: int, attempt: int, kill_at: float) -> None:
        """Tell the supervisor that this attempt runs and may run until ``kill_at``
        (``time.monotonic()``); a later call for the same attempt extends it."""
        self._kill_at = kill_at if self._kill_at == math.inf else max(self._kill_at, kill_at)
        self._lifeline_write(RECORD.pack(job_id, attempt, kill_at))

    def idle(self) -> None:
        """No job runs any more: nothing to kill when a lease runs out."""
        self._kill_at = math.inf
        self._lifeline_write(RECORD.pack(0, 0, 0.0))

    def _lifeline_write(self, record: bytes) -> None:
        # A full pipe means the supervisor is stuck or gone: it acts on what it has read.
        with self._lifeline_lock, contextlib.suppress(OSError):
            if self._lifeline >= 0:
                os.write(self._lifeline, record)

    def kill(self) -> None:
        kill_tree(self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._close_pipes()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def fenced(self) -> bool:
        """Whether the job was killed because its lease was not renewed in time.

        Told by the clock, not by the supervisor's exit code: a job's own ``sys.exit(75)``
        ends the supervisor with the same code. The supervisor kills at the fence it was told
        (the same ``time.monotonic()`` on the host), so a tree that ended before it did so of
        its own accord."""
        self.proc.wait()
        return time.monotonic() >= self._kill_at

    def exit_description(self) -> str:
        code = self.proc.wait()
        if code < 0:
            import signal

            return f"killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def close(self) -> None:
        """End an idle child politely: closing its pipe makes it return."""
        self.conn.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            kill_tree(self.proc.pid)
            self.proc.wait()
        self._close_pipes()  # the lifeline last: its end of file would kill, not end, the job
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _close_pipes(self) -> None:
        self.conn.close()
        with self._lifeline_lock:
            if self._lifeline >= 0:
                os.close(self._lifeline)
                self._lifeline = -1
