"""Find and kill job processes whose supervisor is gone: the last net under a job's tree.

Every process a job runs in, and everything it starts, inherits ``BOTYARD_JOB_OWNER=<pid>:<start
time>`` naming the supervisor of its slot (``automations/supervisor.py``). The supervisor kills
its tree when its worker goes; a process that slipped out of that tree (the supervisor itself
killed with -9, say) keeps running with nobody holding its job's lease. Those are killed here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psutil

from botyard.automations.supervisor import OWNER_VAR
from botyard.processes import kill_tree

log = logging.getLogger("botyard.worker")
# psutil's start times are in clock ticks (1/100 s) since boot: the same process, the same time.
_SAME_START = 0.05


@dataclass(frozen=True, slots=True)
class Leftover:
    pid: int
    owner: int
    command: str


def _owner(marker: str) -> tuple[int, float] | None:
    pid, _, started = marker.partition(":")
    try:
        return int(pid), float(started)
    except ValueError:
        return None


def _alive(owner: tuple[int, float]) -> bool:
    pid, started = owner
    try:
        proc = psutil.Process(pid)
        # A recycled pid is another process, started later.
        same = abs(float(proc.create_time()) - started) < _SAME_START
        return same and bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def find_leftovers() -> list[Leftover]:
    """Processes marked as a job's whose supervisor has ended."""
    found = []
    owners: dict[str, bool] = {}  # one look at each supervisor, however many processes it had
    for proc in psutil.process_iter(["pid", "environ", "name"]):
        marker = (proc.info.get("environ") or {}).get(OWNER_VAR)
        if not marker:
            continue  # not a job's, or not ours to read
        if marker not in owners:
            owner = _owner(marker)
            owners[marker] = owner is None or _alive(owner)
        if not owners[marker]:
            owner_pid = int(marker.partition(":")[0])
            found.append(Leftover(proc.info["pid"], owner_pid, proc.info.get("name") or "?"))
    return found


def sweep() -> list[Leftover]:
    """Kill every leftover job process with its descendants; each is logged and returned."""
    leftovers = find_leftovers()
    for leftover in leftovers:
        kill_tree(leftover.pid)
        log.warning(
            "killed job process %d (%s) left running by a supervisor that is gone (pid %d)",
            leftover.pid,
            leftover.command,
            leftover.owner,
        )
    return leftovers
