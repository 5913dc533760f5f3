"""Run the orchestrator and workers as child processes and stop them together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


class Supervisor:
    """Starts ``botyard`` sub-commands; on exit sends SIGTERM, then SIGKILL after a grace."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        args: list[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Start ``botyard ARGS``; ``env`` adds to (or overrides) the shared environment."""
        out = log.open("ab") if log is not None else None
        proc = subprocess.Popen(
            [sys.executable, "-m", "botyard", *args],
            env={**self.env, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )
        self.procs.append((name, proc))

    def failed(self) -> str | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}"
        return None

    def stop(self, grace: float = 30.0) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def wait(self) -> None:
        """Block until a child exits or we are interrupted."""
        while self.failed() is None:
            time.sleep(0.2)


def wait_healthy(url: str, supervisor: Supervisor, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        problem = supervisor.failed()
        if problem:
            raise RuntimeError(problem)
        with contextlib.suppress(httpx.HTTPError):
            # Our own child on loopback: its certificate may be for a public name.
            answer = httpx.get(f"{url}/health/ready", timeout=1.0, verify=False)
            if answer.status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the orchestrator at {url} did not become ready in {timeout:g}s")


@contextlib.contextmanager
def interrupts_as_exit() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so both stop everything the same way."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
