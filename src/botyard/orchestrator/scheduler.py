"""The orchestrator's maintenance jobs on APScheduler, run by one replica at a time.

Every replica schedules the same jobs; a run goes ahead only on the replica that holds the
``maintenance`` lease in the store, so with several replicas each trigger does its work once.
The lease is renewed by a thread of its own every third of its TTL; when its holder dies, the
next replica takes over within one TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from botyard.log_throttle import LogThrottle, fingerprint
from botyard.orchestrator.dispatch import AgentDispatcher
from botyard.orchestrator.health import stale_after
from botyard.orchestrator.reconciler import live_workers, reconcile
from botyard.orchestrator.service import JobService
from botyard.settings import Settings

log = logging.getLogger("botyard.maintenance")

LEASE = "maintenance"
JOBS = (
    "poll_job_queue",
    "collect_metrics",
    "cleanup_old_evidence",
    "recover_stale_jobs",
    "poll_worker_job_status",
)
REDIS_JOBS = ("reconcile_redis",)  # scheduled only with Redis dispatch


class Maintenance:
    def __init__(
        self, service: JobService, settings: Settings, dispatcher: AgentDispatcher | None = None
    ) -> None:
        self.service = service
        self.dispatcher = dispatcher
        self.store = service.store
        self.settings = settings
        self.config = settings.maintenance
        self.replica = self.config.replica_id
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self._leader_until = 0.0
        self._stop = threading.Event()
        self._errors = LogThrottle(log)
        self._leadership = threading.Thread(
            target=self._lead, name="botyard-leadership", daemon=True
        )

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._renew_leadership()
        self._leadership.start()
        self._add_jobs()
        self.scheduler.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self.scheduler.running:
            # Wait for a run in progress: it holds a store connection the caller is about to close.
            self.scheduler.shutdown(wait=True)
        self._leadership.join(timeout=5)
        if self.is_leader:
            self.store.leases.release(LEASE, self.replica)

    def reset(self) -> int:
        """Re-create the maintenance jobs (``POST /scheduler/reset``); returns how many."""
        self.scheduler.remove_all_jobs()
        self._add_jobs()
        if not self.scheduler.running:
            self.scheduler.start()
        return len(self.scheduler.get_jobs())

    def _add_jobs(self) -> None:
        cfg = self.config
        recover = cfg.recover_stale_jobs_seconds or self.settings.lease.recover_interval
        jobs: list[tuple[str, Callable[[], Any], Any]] = [
            ("poll_job_queue", self.poll_job_queue, {"seconds": cfg.poll_job_queue_seconds}),
            ("collect_metrics", self.collect_metrics, {"seconds": cfg.collect_metrics_seconds}),
            (
                "cleanup_old_evidence",
                self.cleanup_old_evidence,
                CronTrigger.from_crontab(cfg.cleanup_old_evidence_cron, timezone="UTC"),
            ),
            ("recover_stale_jobs", self.recover_stale_jobs, {"seconds": recover}),
            (
                "poll_worker_job_status",
                self.poll_worker_job_status,
                {"seconds": cfg.poll_worker_job_status_seconds},
            ),
        ]
        if self.service.wakeups.lists is not None:
            interval = self.settings.redis.reconcile_seconds
            jobs.append(("reconcile_redis", self.reconcile_redis, {"seconds": interval}))
        for name, func, trigger in jobs:
            options = {"id": name, "name": name, "max_instances": 1, "coalesce": True}
            runner = self._as_leader(name, func)
            if isinstance(trigger, dict):
                self.scheduler.add_job(runner, "interval", **trigger, **options)
            else:
                self.scheduler.add_job(runner, trigger, **options)

    # -- leadership ----------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._leader_until

    def _lead(self) -> None:
        while not self._stop.wait(self.config.leader_ttl / 3):
            self._renew_leadership()

    def _renew_leadership(self) -> None:
        ttl = self.config.leader_ttl
        started = time.monotonic()
        try:
            held = self.store.leases.acquire(LEASE, self.replica, ttl)
        except Exception as exc:
            self._failed("could not renew the maintenance lease", exc)
            return
        was = self.is_leader
        # Count from before the round trip, and stop a little early: never two leaders.
        self._leader_until = started + ttl * 0.8 if held else 0.0
        if held and not was:
            log.info("replica %s now runs the maintenance jobs", self.replica)

    def _failed(self, what: str, exc: Exception) -> None:
        """A failure that repeats every round while the store is away or its disk full: its
        traceback once a minute with a count, not once a round."""
        self._errors(what, level=logging.ERROR, key=f"{what}|{fingerprint(exc)}", exc_info=exc)

    def _as_leader(self, name: str, func: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            if not self.is_leader:
                return
            try:
                run_id = self.store.maintenance.started(name, self.replica)
            except Exception as exc:  # the store cannot record the run: it cannot do it either
                self._failed(f"maintenance job {name} could not start", exc)
                return
            try:
                detail = func()
            except Exception as exc:
                self._failed(f"maintenance job {name} failed", exc)
                outcome, detail = "error", {"error": str(exc)}
            else:
                outcome = "ok"
            try:
                self.store.maintenance.finished(run_id, outcome, detail)
            except Exception as exc:
                self._failed(f"maintenance job {name} could not record its run", exc)

        run.__name__ = name
        return run

    def status(self) -> dict[str, Any]:
        """``GET /scheduler``: running, job count and jobs, the leader and each job's last run."""
        current = self.store.leases.current(LEASE)
        now = datetime.now(UTC)
        leader = None
        if current is not None and current.expires_at > now:
            leader = current.holder
        last = self.store.maintenance.last_runs()
        jobs = []
        order = {name: i for i, name in enumerate((*JOBS, *REDIS_JOBS))}
        for job in sorted(self.scheduler.get_jobs(), key=lambda j: order.get(j.id, len(order))):
            run = last.get(job.id)
            jobs.append(
                {
                    "id": job.id,
                    "function": job.name,
                    "trigger": "cron" if isinstance(job.trigger, CronTrigger) else str(job.trigger),
                    "next_run": _iso(job.next_run_time),
                    "last_run": None
                    if run is None
                    else {
                        "replica": run.replica,
                        "started_at": _iso(run.started_at),
                        "outcome": run.outcome,
                    },
                }
            )
        return {
            "running": bool(self.scheduler.running),
            "job_count": len(jobs),
            "jobs": jobs,
            "replica": self.replica,
            "leader": leader,
            "is_leader": self.is_leader,
        }

    # -- the jobs --------------------------------------------------------------------

    def poll_job_queue(self) -> dict[str, int]:
        """Wake workers for runnable jobs: dispatch is event-driven, this is the safety net."""
        return {"queues_woken": self.service.dispatch()}

    def recover_stale_jobs(self) -> dict[str, int]:
        return {"recovered_jobs": self.service.recover()}

    def collect_metrics(self) -> dict[str, int]:
        self.store.workers.mark_silent_offline(self._stale_after())
        online = sum(1 for w in self.store.workers.all() if w.status != "offline")
        point = self.store.metrics.sample(workers_online=online)
        kept = timedelta(days=self.config.history_retention_days)
        pruned = self.store.metrics.prune(kept)
        # The record of maintenance runs goes as the metrics do (reconcile_redis adds one every
        # few seconds).
        runs_pruned = self.store.maintenance.prune(kept)
        return {"queued_jobs": point.queued_jobs, "pruned": pruned, "runs_pruned": runs_pruned}

    def poll_worker_job_status(self) -> dict[str, Any]:
        """Silent workers go offline (their leases expire); agents are asked about their jobs."""
        detail: dict[str, Any] = {
            "offline": self.store.workers.mark_silent_offline(self._stale_after())
        }
        if self.dispatcher is not None:
            detail.update(self.dispatcher.poll_agents())
        return detail

    def reconcile_redis(self) -> dict[str, int]:
        """Re-announce runnable jobs Redis lost; give back what vanished workers took."""
        lists = self.service.wakeups.lists
        assert lists is not None  # scheduled only with Redis dispatch
        return reconcile(self.store, lists, live_workers(self.store, self._stale_after()))

    def cleanup_old_evidence(self) -> dict[str, int]:
        """Delete evidence files and rows older than ``SCREENSHOT_RETENTION_DAYS``."""
        cutoff = datetime.now(UTC) - timedelta(days=self.config.screenshot_retention_days)
        root = (self.settings.store.data_dir / "evidence").resolve()
        rows = files = 0
        while batch := self.store.evidence_before(cutoff):
            for item in batch:
                path = Path(item.path).resolve()
                # Only ever delete inside the evidence folder, whatever a row says.
                if path.is_relative_to(root) and path.is_file():
                    path.unlink()
                    files += 1
            rows += self.store.delete_evidence([item.id for item in batch])
        _remove_empty_dirs(root)
        return {"rows": rows, "files": files}

    def _stale_after(self) -> float:
        return stale_after(self.settings)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
