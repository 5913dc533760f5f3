"""Automations the worker tests run. Loaded in the worker's children by absolute file path."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from botyard import BusinessError, JobContext, automation


@automation("tests.ok")
def ok(ctx: JobContext, name: str, lines: int = 2) -> dict[str, Any]:
    with ctx.step("greet"):
        for n in range(lines):
            ctx.log.info("hello %s #%d", name, n)
        ctx.attach("greeting.txt", f"hello {name}")
    print(f"printed for {name}")
    return {"greeting": f"hello {name}", "attempt": ctx.attempt}


@automation("tests.flaky")
def flaky(ctx: JobContext, fail_times: int = 1) -> dict[str, int]:
    if ctx.attempt <= fail_times:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return {"attempt": ctx.attempt}


@automation("tests.business")
def business(ctx: JobContext) -> None:
    raise BusinessError("the invoice is already paid")


@automation("tests.side_effect_crash")
def side_effect_crash(ctx: JobContext) -> None:
    with ctx.side_effect("pay"):
        os._exit(3)  # dies half-way through changing the outside world


@automation("tests.spawn_and_hang")
def spawn_and_hang(ctx: JobContext, pid_file: str) -> None:
    """Start two grandchildren, one of which leaves our session, then hang."""
    kept = subprocess.Popen(["sleep", "300"])
    escaped = subprocess.Popen(["sleep", "300"], start_new_session=True)
    pids = f"{os.getpid()} {kept.pid} {escaped.pid}"
    Path(pid_file + ".tmp").write_text(pids)
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(300)


@automation("tests.segfault")
def segfault(ctx: JobContext) -> None:
    sys.stderr.flush()
    ctypes.string_at(0)


@automation("tests.slow")
def slow(ctx: JobContext, seconds: float, pid_file: str | None = None) -> dict[str, float]:
    if pid_file is not None:
        Path(pid_file + ".tmp").write_text(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
    time.sleep(seconds)
    return {"slept": seconds}


@automation("tests.oom_killed")
def oom_killed(ctx: JobContext) -> None:
    """Dies the way the kernel's OOM killer ends a process: SIGKILL, no goodbye."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@automation("tests.memory_error")
def memory_error(ctx: JobContext) -> None:
    """Runs out of memory under an address-space limit: MemoryError inside the job."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2**30, resource.RLIM_INFINITY))
    hog = bytearray(2**31)
    del hog


@automation("tests.tally")
def tally(ctx: JobContext, path: str, seconds: float = 0.0) -> dict[str, int]:
    """Appends "<job id> <attempt>" to ``path`` (one small O_APPEND write: never interleaved),
    so a test can count how many times each job really ran."""
    time.sleep(seconds)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{ctx.job_id} {ctx.attempt}\n".encode())
    finally:
        os.close(fd)
    return {"attempt": ctx.attempt}


@automation("tests.unstorable_reports")
def unstorable_reports(ctx: JobContext) -> dict[str, str]:
    """Reports no store column can hold as they are: NUL, a lone surrogate, names too long."""
    long_name = "s" * 300
    ctx.log.info("a NUL \x00 and half an emoji \ud83d")
    with ctx.step(long_name + "\x00"):
        ctx.attach("e" * 300 + ".txt", "evidence")
    with ctx.side_effect("x" * 300 + "\ud83d"):
        pass
    return {"note": "half an emoji \ud83d"}
