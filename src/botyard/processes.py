"""Killing a process together with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> int:
    """Kill ``pid``, its process group and every descendant, even those that left the group.

    Returns how many processes were signalled. The descendants are listed before anything is
    killed: once the parent is gone, its orphans can no longer be found through it.
    """
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    count = 0
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
        count += 1
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    for proc in descendants:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)
            count += 1
    return count
