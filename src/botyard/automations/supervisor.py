"""The supervisor of a slot's job process: whatever a job starts dies with its worker.

The worker starts ``python -P supervisor.py CONN LIFELINE WORKER_PID`` in a session of its own;
the supervisor starts the job process (``botyard.automations.child``) beside nothing else and
runs no job code itself, so a busy, blocked or misbehaving job cannot keep it from acting.

- It is a child subreaper: processes a job starts stay its descendants even when they
  daemonise (setsid and a double fork), so it can find them all, and it reaps them as they end.
  This is why it is a process apart from the job's: a subreaper must reap the orphans it adopts,
  and in the job's own process that would steal exit statuses its ``subprocess`` calls wait for.
- The lifeline is a pipe whose write end only the worker holds. End of file means the worker is
  gone, however it went (``kill -9`` too): the supervisor kills every descendant and exits.
  ``PR_SET_PDEATHSIG`` (SIGTERM) is a second, independent path to the same end.
- Self-fencing: while a job runs, the worker writes on the lifeline until when that job's lease
  is surely held (renewals extend it). If that moment passes with no extension (the worker is
  stopped, or its store calls hang), the job's whole tree is killed before the lease can expire,
  so a worker that recovers the job never runs it beside the old attempt. An idle job process
  (no job) is left alone.
- Every job process carries ``BOTYARD_JOB_OWNER=<supervisor pid>:<its start time>`` in its
  environment, inherited by what it starts: the workers' sweeper kills marked processes whose
  supervisor is gone, the last net for anything that slipped out of the tree.

Run as a file, not a module of the package: importing ``botyard`` takes ~0.1 s and the
supervisor needs none of it (only the standard library and psutil).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import select
import signal
import struct
import sys
import time
from types import FrameType

import psutil

OWNER_VAR = "BOTYARD_JOB_OWNER"
# One lifeline record: job id, attempt, and the time.monotonic() (system-wide on a host) at which
# the job is to be killed unless a later record extends it. Job id 0: no job runs now.
RECORD = struct.Struct("!qqd")
# Exit codes, for whoever reads a process listing or a log: the worker does not go by them (a
# job's own sys.exit(75) ends the supervisor with that code too); it tells a fence by the clock.
FENCED = 75  # the job was killed because its lease was not renewed in time
WORKER_GONE = 70

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_KILL_ROUNDS = 50


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def reap() -> dict[int, int]:
    """Reap every ended child (adopted orphans too); their wait statuses by pid."""
    ended: dict[int, int] = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended[pid] = status


def kill_descendants() -> dict[int, int]:
    """SIGKILL every descendant, again until none is left (one may fork while we list);
    returns the wait statuses of the children reaped meanwhile."""
    me = psutil.Process()
    ended: dict[int, int] = {}
    for _ in range(_KILL_ROUNDS):
        try:
            descendants = me.children(recursive=True)
        except psutil.Error:
            descendants = []
        alive = [p for p in descendants if p.pid not in ended]
        if not alive:
            break
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        time.sleep(0.005)
        ended.update(reap())  # orphans of the killed come to us: next round finds them
    return ended


def _end(code: int) -> None:
    kill_descendants()
    os._exit(code)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    _end(WORKER_GONE)  # PR_SET_PDEATHSIG: the worker's thread that started us is gone


def _mirror(status: int) -> None:
    """Exit as the job process did, so the worker can tell how it ended."""
    kill_descendants()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


class Lifeline:
    """What the worker says on the pipe: the running job and until when it may run."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.job: tuple[int, int] | None = None
        self.kill_at = math.inf
        self._buffer = b""

    def read(self) -> bool:
        """Take what the worker wrote; False at end of file (the worker is gone)."""
        data = os.read(self.fd, RECORD.size * 256)
        if not data:
            return False
        self._buffer += data
        whole = len(self._buffer) - len(self._buffer) % RECORD.size
        for job_id, attempt, kill_at in RECORD.iter_unpack(self._buffer[:whole]):
            self._take(job_id, attempt, kill_at)
        self._buffer = self._buffer[whole:]
        return True

    def _take(self, job_id: int, attempt: int, kill_at: float) -> None:
        if job_id == 0:
            self.job, self.kill_at = None, math.inf
        elif self.job == (job_id, attempt):
            self.kill_at = max(self.kill_at, kill_at)
        else:
            self.job, self.kill_at = (job_id, attempt), kill_at

    def timeout(self) -> float | None:
        return None if self.job is None else max(0.0, self.kill_at - time.monotonic())

    def expired(self) -> bool:
        return self.job is not None and time.monotonic() >= self.kill_at


def supervise(runner: int, lifeline: Lifeline, wakeup: int) -> None:
    while True:
        ready, _, _ = select.select([lifeline.fd, wakeup], [], [], lifeline.timeout())
        if lifeline.fd in ready and not lifeline.read():
            _end(WORKER_GONE)
        if wakeup in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wakeup, 4096)
        ended = reap()
        if runner in ended:
            _mirror(ended[runner])
        if lifeline.expired():
            _end(FENCED)


def main() -> None:
    conn_fd, lifeline_fd, worker_pid = (int(arg) for arg in sys.argv[1:4])
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != worker_pid:  # the worker died before the line above took effect
        os._exit(WORKER_GONE)
    os.set_inheritable(lifeline_fd, False)  # only the worker's write end matters; keep ours
    # SIGCHLD wakes the loop (a child to reap, perhaps the job process itself).
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    me = psutil.Process()
    env = {**os.environ, OWNER_VAR: f"{me.pid}:{me.create_time():.2f}"}
    args = [sys.executable, "-m", "botyard.automations.child", str(conn_fd), str(me.pid)]
    runner = os.posix_spawn(sys.executable, args, env)  # inherits the connection, nothing else
    os.close(conn_fd)  # the worker must see end of file on it when the job process ends
    supervise(runner, Lifeline(lifeline_fd), wake_read)


if __name__ == "__main__":
    main()
