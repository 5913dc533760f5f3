"""Jobs whose side effect is done by a process they start: a grandchild of the worker.

Each side effect appends "<job id> <attempt>" to a tally file after a delay, from a process the
job started: a plain ``subprocess`` (waited for), or a daemon that left the job's session with
setsid and a double fork. Whatever survives its worker would write a second line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from botyard import JobContext, automation

# argv: tally, line, delay, pid file. Writes its pid first, then the line after the delay.
WRITER = """
import os, sys, time
tally, line, delay, pid_file = sys.argv[1:5]
open(pid_file + ".tmp", "w").write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
time.sleep(float(delay))
fd = os.open(tally, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(fd, (line + "\\n").encode())
"""
DAEMON = """
import os, sys
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
exec(compile(sys.argv.pop(1), "writer", "exec"))
"""


def start_writer(tally: str, line: str, delay: float, pid_file: str, *, daemon: bool) -> None:
    """Run the writer: to its end (``subprocess.run``), or as a daemon that outlives this call."""
    args = [tally, line, str(delay), pid_file]
    if daemon:
        subprocess.run([sys.executable, "-c", DAEMON, WRITER, *args], check=True)
    else:
        subprocess.run([sys.executable, "-c", WRITER, *args], check=True)


@automation("crash.tally_by_grandchild", idempotent=True, max_attempts=3, timeout=60)
def tally_by_grandchild(
    ctx: JobContext, tally: str, marker_dir: str, delay: float, daemon: bool = False
) -> dict[str, int]:
    line = f"{ctx.job_id} {ctx.attempt}"
    Path(marker_dir, f"{ctx.job_id}-{ctx.attempt}.job").write_text(str(os.getpid()))
    pid_file = str(Path(marker_dir, f"{ctx.job_id}-{ctx.attempt}.grandchild"))
    start_writer(tally, line, delay, pid_file, daemon=daemon)
    wait_for_line(tally, line, delay + 20)  # the side effect is part of the attempt
    return {"attempt": ctx.attempt}


def wait_for_line(tally: str, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (Path(tally).exists() and line in Path(tally).read_text().splitlines()):
        if time.monotonic() > deadline:
            raise RuntimeError("the side effect did not happen")
        time.sleep(0.05)


@automation("crash.leaves_a_process", idempotent=True, max_attempts=2, timeout=60)
def leaves_a_process(ctx: JobContext, marker_dir: str) -> dict[str, bool]:
    """Attempt 1 starts a process in a session of its own and fails, leaving it running;
    attempt 2 says whether that process was still alive when it started."""
    pid_file = Path(marker_dir, f"{ctx.job_id}-1.grandchild")
    if ctx.attempt == 1:
        proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
        pid_file.write_text(str(proc.pid))
        raise RuntimeError("attempt 1 fails and leaves its process behind")
    return {"left_running": _running(int(pid_file.read_text()))}


@automation("crash.exits_75", idempotent=True, max_attempts=1, timeout=60)
def exits_75(ctx: JobContext) -> None:
    """The job's own exit code, the one the supervisor used to say 'fenced' with."""
    sys.exit(75)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
