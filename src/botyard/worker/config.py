"""What a pull worker is told (its configuration) and what it counts (its statistics)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from botyard.jobs import JobStatus
from botyard.version import __version__


@dataclass
class WorkerConfig:
    automations: list[str]  # the names this worker can run
    modules: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    worker_id: str = ""
    queues: list[str] = field(default_factory=lambda: ["default"])
    concurrency: int = 4
    lease_ttl: float = 30.0
    recover_interval: float = 5.0
    poll_interval: float = 5.0
    heartbeat_interval: float = 5.0
    shutdown_grace: float = 30.0
    max_retries: int | None = None
    prefetch: int | None = None  # jobs claimed ahead of free slots; default: concurrency
    data_dir: Path = Path(".botyard")
    mode: str = "pull"  # pull: claims its own jobs; agent: runs what the orchestrator pushes
    endpoint: str | None = None  # agent: the URL the orchestrator reaches it at
    # BOTYARD_WORKER_TOKEN: each attempt gets a credential derived from it, never the token.
    worker_token: SecretStr | None = None

    def __post_init__(self) -> None:
        if not self.worker_id:
            self.worker_id = f"{socket.gethostname()}-{os.getpid()}"

    @property
    def renew_interval(self) -> float:
        return max(0.5, min(self.lease_ttl / 3, 10.0))

    @property
    def fence_margin(self) -> float:
        """How long before its lease could expire a job whose lease was not renewed is killed:
        time for the kill to land. Healthy renewals (every ``renew_interval``) never get near.

        A tenth of the lease, up to 2 s, and at least 0.5 s: the kill lands within the
        supervisor's wake-up and one SIGKILL round over the tree (milliseconds), but a loaded
        host may not schedule it for a few hundred (0.25 s, a tenth of a 2 s lease, left too
        little). The floor gives way only where it would leave less than two renewal intervals
        to renew in, so that one late renewal never costs a healthy job (a 1 s lease: 0.25 s)."""
        wanted = max(0.5, min(self.lease_ttl / 10, 2.0))
        return min(wanted, max(0.25, self.lease_ttl - 2 * self.renew_interval))

    def heartbeat_fields(self, status: str, active: int) -> dict[str, str]:
        """What the worker's Redis heartbeat key holds."""
        return {
            "hostname": socket.gethostname(),
            "mode": self.mode,
            "pid": str(os.getpid()),
            "queues": ",".join(self.queues),
            "capacity": str(self.concurrency),
            "active": str(active),
            "status": status,
            "version": __version__,
            "last_heartbeat": datetime.now(UTC).isoformat(),
        }


@dataclass
class Stats:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    needs_review: int = 0
    cancelled: int = 0
    lost: int = 0

    def count(self, status: JobStatus | None) -> None:
        self.processed += 1
        if status is None:
            self.lost += 1
        elif status is JobStatus.SUCCEEDED:
            self.succeeded += 1
        elif status is JobStatus.FAILED:
            self.failed += 1
        elif status is JobStatus.QUEUED:
            self.retried += 1
        elif status is JobStatus.NEEDS_REVIEW:
            self.needs_review += 1
        elif status is JobStatus.CANCELLED:
            self.cancelled += 1

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)
