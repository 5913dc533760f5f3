"""The worker's side of a child process: start it, talk to it, kill it with its whole tree."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from typing import Any

from botyard.errors import AutomationError
from botyard.processes import kill_tree


class ChildProcess:
    """One reusable child; :meth:`kill` ends it and everything the running job started."""

    def __init__(self, modules: list[str], scripts: list[str]) -> None:
        parent_sock, child_sock = socket.socketpair()
        # The child's own temporary folder: what a killed job leaves there (Playwright's
        # profiles and artifacts, a script's files) is removed with the child.
        self.tmpdir = tempfile.mkdtemp(prefix="botyard-child-")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "botyard.automations.child",
                str(child_sock.fileno()),
                str(os.getpid()),
            ],
            pass_fds=[child_sock.fileno()],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": self.tmpdir},
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.conn.send((modules, scripts))
        self._ready = False

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

    def kill(self) -> None:
        kill_tree(self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.conn.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

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
        shutil.rmtree(self.tmpdir, ignore_errors=True)
