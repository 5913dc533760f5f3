"""The pull worker: claims jobs from the store the moment they arrive and runs them in children.

Threads: the main loop (claims), one thread per slot (runs a job on a child process), a writer
(stores what attempts report), a keeper (renews leases, and nothing else: a late renewal gets a
healthy job fenced), an upkeep thread (heartbeats, sweeps: ``upkeep.py``) and a listener
(wake-ups and cancels from the bus). Nothing here waits on a polling interval except the safety
net.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from botyard.bus.base import CANCEL, JOBS, Bus, Subscription
from botyard.bus.redis_lists import RedisJobLists
from botyard.bus.wakeups import Wakeups
from botyard.events import EventPublisher, JobEvent, NullPublisher
from botyard.jobs import JobStatus, Outcome
from botyard.masking import Masker
from botyard.store.records import ClaimedJob, Completion
from botyard.store.sql import SqlStore
from botyard.version import __version__
from botyard.worker.config import Stats, WorkerConfig
from botyard.worker.feed import RedisFeed
from botyard.worker.fences import Fences
from botyard.worker.slot import Slot
from botyard.worker.upkeep import Upkeep
from botyard.worker.writer import StoreWriter

log = logging.getLogger("botyard.worker")

_PREFETCH_BELOW_SECONDS = 1.0


class PullWorker:
    def __init__(
        self,
        store: SqlStore,
        bus: Bus,
        config: WorkerConfig,
        *,
        events: EventPublisher | None = None,
        lists: RedisJobLists | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        # Entries on Redis lists when Redis dispatch is on, else wake-ups on the bus.
        self.wakeups = Wakeups(bus, lists)
        self._feed: RedisFeed | None = None
        # Status events and heartbeat keys (Redis); never waited on.
        self.events: EventPublisher = events or NullPublisher()
        # Held jobs' automation and queue, for the events their finish publishes.
        self._named: dict[int, tuple[str, str]] = {}
        self.stats = Stats()
        self.writer = StoreWriter(store)
        self._inbox: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._claiming = threading.Lock()  # one claim at a time: room is counted once
        # Claimed and not finished: running in a slot, or waiting in the inbox for one.
        self._held: dict[int, ClaimedJob] = {}
        # Held attempts that lost their lease before they started, by (job id, attempt): a
        # later attempt of the same job is a job of its own, never refused for this one.
        self._dropped: set[tuple[int, int]] = set()
        self.fences = Fences(config.lease_ttl, config.fence_margin)
        # Held jobs with a concurrency key, and their queue: finishing one frees the key.
        self._keyed: dict[int, str] = {}
        self._mean_seconds: float | None = None  # how long jobs take here, smoothed
        self._wake = True  # claim at start
        self._next_poll = 0.0
        self._next_due: float | None = None  # monotonic time a delayed job becomes runnable
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._grace_over = threading.Event()
        self._last_renewal = time.monotonic()
        self._subscription: Subscription | None = None
        self._listener: threading.Thread | None = None
        self._upkeep: threading.Thread | None = None
        cap = None if config.max_retries is None else config.max_retries + 1
        token = config.worker_token.get_secret_value() if config.worker_token else None
        # The secrets the worker knows and its jobs' processes are not given (and the rest).
        masker = masker or Masker.from_environment()
        self.slots = [
            Slot(
                i,
                inbox=self._inbox,
                writer=self.writer,
                modules=config.modules,
                scripts=config.scripts,
                evidence_root=config.data_dir.resolve() / "evidence",
                max_attempts_cap=cap,
                on_done=self._on_done,
                should_run=self._should_run,
                on_free=self._on_free,
                fence_at=self.fences.kill_at,
                worker_token=token,
                masker=masker,
            )
            for i in range(config.concurrency)
        ]
        self.upkeep = Upkeep(
            store,
            config,
            wakeups=self.wakeups,
            events=self.events,
            stats=self.stats,
            slots=self.slots,
        )

    # -- lifecycle -------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> None:
        """Serve until :meth:`stop` (or SIGTERM / SIGINT), then shut down gracefully."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        try:
            self._main_loop()
        finally:
            self._shutdown()

    def start(self) -> None:
        cfg = self.config
        self.store.workers.register(
            cfg.worker_id,
            hostname=socket.gethostname(),
            mode=cfg.mode,
            pid=os.getpid(),
            automations=cfg.automations,
            queues=cfg.queues,
            capacity=cfg.concurrency,
            version=__version__,
            endpoint=cfg.endpoint,
        )
        # What an earlier run's jobs left running dies before their jobs are recovered.
        self.upkeep.sweep_host()
        # Jobs still marked as ours are orphans of an earlier run under the same id.
        orphans = self.store.release_orphans(cfg.worker_id)
        if orphans:
            log.warning(
                "recovered %d jobs left running by an earlier %s", len(orphans), cfg.worker_id
            )
            self.upkeep.announce_recovered(orphans)
        self._subscription = self.bus.subscribe()
        self.writer.start()
        for slot in self.slots:
            slot.prestart()
            slot.start()
        self._listener = threading.Thread(target=self._listen, name="botyard-listener", daemon=True)
        self._listener.start()
        threading.Thread(target=self._keep, name="botyard-keeper", daemon=True).start()
        self._upkeep = self.upkeep.start(self._stopped, self._stopping)
        if self.wakeups.lists is not None:
            self._feed = RedisFeed(
                self.wakeups.lists,
                cfg.worker_id,
                cfg.queues,
                room=self._wait_room,
                claim=lambda queue_name, most: self._claim([queue_name], most),
                still_queued=self.store.queued_among,
                wake=self.wakeups.queue,
                stopping=self._stopping,
            )
            self._feed.start()
        # Everything imported so far lives as long as the worker: keep the collector off it,
        # or a full collection walks ~100k objects and stalls every thread for ~0.1 s.
        gc.collect()
        gc.freeze()
        log.info(
            "worker %s serving %s on queues %s with %d slots",
            cfg.worker_id,
            ", ".join(cfg.automations) or "nothing",
            ", ".join(cfg.queues),
            cfg.concurrency,
        )

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; running jobs get ``grace`` seconds (default: the configured grace)."""
        if grace is not None:
            self.config.shutdown_grace = grace
        if self._stopping.is_set():
            self._grace_over.set()  # asked twice: do not wait any longer
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self.stop()

    # -- claiming ----------------------------------------------------------------

    def _main_loop(self) -> None:
        cfg = self.config
        while not self._stopping.is_set():
            with self._cond:
                now = time.monotonic()
                due = self._next_due is not None and now >= self._next_due
                if due:
                    self._next_due = None
                room = self._capacity() - len(self._held)
                should_claim = room > 0 and (self._wake or due or now >= self._next_poll)
                if not should_claim:
                    wait = self._next_poll - now
                    if self._next_due is not None:
                        wait = min(wait, self._next_due - now)
                    self._cond.wait(timeout=max(0.0, wait) if room > 0 else None)
                    continue
                self._wake = False
                limit = room
            polled = now >= self._next_poll
            try:
                claimed, asked = self._claim(cfg.queues, limit)
                if polled:
                    self._plan_next_due()
            except Exception:
                log.exception("claim failed; retrying at the next poll")
                self._next_poll = time.monotonic() + min(1.0, cfg.poll_interval)
                continue
            if polled:
                self._next_poll = time.monotonic() + cfg.poll_interval
            if asked and len(claimed) == asked:
                with self._cond:
                    self._wake = True  # there may be more where these came from

    def _claim(self, queues: list[str], most: int) -> tuple[list[ClaimedJob], int]:
        """Claim up to ``most`` jobs of ``queues``, no more than there is room for, and hand
        them to the slots. Returns the jobs and how many were asked for."""
        cfg = self.config
        with self._claiming:
            if self._stopping.is_set():  # the shutdown drains the inbox: claim nothing more
                return [], 0
            with self._cond:
                asked = min(most, self._capacity() - len(self._held))
            if asked <= 0:
                return [], 0
            leased_at = time.monotonic()  # before the statement: the lease ends no sooner
            claimed = self.store.claim(
                cfg.worker_id,
                queues=queues,
                automations=cfg.automations,
                limit=asked,
                lease_ttl=cfg.lease_ttl,
            )
            with self._cond:
                self._hold(claimed, leased_at)
            for job in claimed:
                self._inbox.put(job)
        return claimed, asked

    def _wait_room(self, timeout: float) -> int:
        """Free room for jobs, waiting up to ``timeout`` seconds for some; 0 once stopping."""
        with self._cond:
            room = self._capacity() - len(self._held)
            if room <= 0 and not self._stopping.is_set():
                self._cond.wait(timeout)
                room = self._capacity() - len(self._held)
            return 0 if self._stopping.is_set() else max(0, room)

    def _hold(self, claimed: list[ClaimedJob], leased_at: float | None = None) -> None:
        """Count jobs as this worker's until their slot is free again (under ``_cond``).

        ``leased_at``: a ``time.monotonic()`` taken before the claim or renewal that set their
        leases (an agent renews the orchestrator's claim before it holds the job); default now."""
        sent_at = time.monotonic() if leased_at is None else leased_at
        self.fences.leased([(job.id, job.attempt) for job in claimed], sent_at)
        for job in claimed:
            self._held[job.id] = job
            if job.concurrency_key is not None:
                self._keyed[job.id] = job.queue
            if self.events.enabled:
                self._named[job.id] = (job.automation, job.queue)
                self._emit(job.id, job.attempt, JobStatus.RUNNING, job.automation, job.queue)

    def _emit(
        self, job_id: int, attempt: int, status: JobStatus, automation: str, queue_name: str
    ) -> None:
        previous = JobStatus.QUEUED if status is JobStatus.RUNNING else JobStatus.RUNNING
        worker_id = self.config.worker_id
        self.events.publish(
            JobEvent(
                job_id, attempt, status.value, previous.value, automation, queue_name, worker_id
            )
        )

    def _plan_next_due(self) -> None:
        nxt = self.store.next_not_before(self.config.queues)
        if nxt is not None:
            self._due_at(nxt)

    def _due_at(self, when: datetime) -> None:
        delay = (when - datetime.now(UTC)).total_seconds()
        due = time.monotonic() + max(0.0, delay)
        with self._cond:
            if self._next_due is None or due < self._next_due:
                self._next_due = due
            self._cond.notify_all()

    def _capacity(self) -> int:
        """Slots, plus jobs claimed ahead while jobs are short.

        Claiming ahead saves a slot the round trip to the store between two short jobs; for
        long jobs (browser sessions, minutes) it would only keep work from idle workers.
        """
        cfg = self.config
        ahead = cfg.concurrency if cfg.prefetch is None else cfg.prefetch
        short = self._mean_seconds is not None and self._mean_seconds < _PREFETCH_BELOW_SECONDS
        return cfg.concurrency + (ahead if short else 0)

    def _should_run(self, job: ClaimedJob) -> bool:
        with self._cond:
            if (job.id, job.attempt) in self._dropped:
                return False
        kill_at = self.fences.kill_at(job.id, job.attempt)
        if kill_at is not None and time.monotonic() >= kill_at:
            # No renewal reached it while it waited: another worker may run it soon.
            log.warning(
                "job %s attempt %s: its lease ran out before it started", job.id, job.attempt
            )
            return False
        return True

    def _on_free(self, job: ClaimedJob, seconds: float | None) -> None:
        with self._cond:
            self._held.pop(job.id, None)
            self._dropped.discard((job.id, job.attempt))
            self.fences.forget(job.id, job.attempt)
            if seconds is None:  # it never ran: no completion follows
                self._keyed.pop(job.id, None)
                self._named.pop(job.id, None)
            else:
                mean = self._mean_seconds
                self._mean_seconds = seconds if mean is None else 0.8 * mean + 0.2 * seconds
            self._cond.notify_all()

    def _on_done(self, completion: Completion, status: Any) -> None:
        self.stats.count(status)
        with self._cond:
            keyed_queue = self._keyed.pop(completion.job_id, None)
            named = self._named.pop(completion.job_id, None)
        if status is not None and named is not None:
            self._emit(completion.job_id, completion.attempt, status, *named)
        if status is JobStatus.QUEUED:
            job = self.store.get_job(completion.job_id, detail=False)
            if job.not_before <= datetime.now(UTC):
                self.wakeups.jobs(job.queue, [job.id])
            else:
                self._due_at(job.not_before)
        if status is not None and keyed_queue is not None:
            # Its concurrency key is free now: a job of its queue waiting for it may run.
            self.wakeups.queue(keyed_queue)

    # -- the listener and the keeper ---------------------------------------------

    def _listen(self) -> None:
        subscription = self._subscription
        assert subscription is not None
        queues = set(self.config.queues)
        try:
            while not self._stopped.is_set():
                try:
                    events = subscription.wait(0.5)
                except Exception:
                    log.exception("bus wait failed")
                    time.sleep(1.0)
                    continue
                wake = False
                cancels: set[int] = set()
                for event in events:
                    if event.kind == JOBS and event.value in queues:
                        wake = True
                    elif event.kind == CANCEL and event.value.isdigit():
                        cancels.add(int(event.value))
                if wake:
                    with self._cond:
                        self._wake = True
                        self._cond.notify_all()
                if cancels:
                    # The event is only a hint: the store says whether the attempt lost its job.
                    self._renew(only=cancels)
        finally:
            subscription.close()  # from this thread, which is the one waiting on it

    def _abort(self, job_id: int, attempt: int, reason: Outcome) -> None:
        for slot in self.slots:
            if slot.abort(job_id, reason, attempt=attempt):
                log.info("stopped job %s (%s)", job_id, reason.value)

    def _keep(self) -> None:
        while not self._stopped.wait(self.config.renew_interval):
            self._renew()

    def _renew(self, only: set[int] | None = None) -> None:
        with self._cond:
            held = [(job.id, job.attempt) for job in self._held.values()]
        if only is not None:
            held = [pair for pair in held if pair[0] in only]
            if not held:
                return
        if not held:
            self._last_renewal = time.monotonic()
            return
        renewed_at = time.monotonic()  # before the statement: the leases last at least from here
        try:
            kept = self.store.renew_leases(self.config.worker_id, held, self.config.lease_ttl)
            self._last_renewal = time.monotonic()
        except Exception:
            log.exception("lease renewal failed")
            if time.monotonic() - self._last_renewal > self.config.lease_ttl:
                # Our leases have run out: someone else may run these jobs now. Stop ours.
                kept = set()
            else:
                return
        if kept:
            kill_at = self.fences.renewed(kept, renewed_at)
            for slot in self.slots:
                slot.extend(kept, kill_at)
        lost = [pair for pair in held if pair not in kept]
        if not lost:
            return
        with self._cond:
            # The store answered for the snapshot above: an attempt that finished meanwhile
            # (its slot freed it) is no loss, and a later attempt of the same job is not this one.
            lost = [(j, a) for j, a in lost if j in self._held and self._held[j].attempt == a]
            self._dropped.update(lost)  # in case they have not started yet; freed with them
        for job_id, attempt in lost:
            log.warning("job %s attempt %s lost its lease; stopping it", job_id, attempt)
            self._abort(job_id, attempt, Outcome.LEASE_EXPIRED)

    # -- shutdown -----------------------------------------------------------------

    def _shutdown(self) -> None:
        cfg = self.config
        if self._feed is not None:
            self._feed.join()
        with self._claiming:  # a claim under way ends first: what it took is in the inbox now
            pass
        # Jobs claimed but not started yet go straight back.
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._release(job)
                with self._cond:
                    self._held.pop(job.id, None)
        deadline = time.monotonic() + cfg.shutdown_grace
        while any(slot.running() for slot in self.slots):
            if time.monotonic() >= deadline or self._grace_over.is_set():
                for slot in self.slots:
                    if (pair := slot.running()) is not None:
                        slot.abort(pair[0], Outcome.RELEASED)
                break
            time.sleep(0.05)
        for _ in self.slots:
            self._inbox.put(None)
        for slot in self.slots:
            slot.thread.join(timeout=10)
        self.writer.stop()
        self._stopped.set()
        if self._upkeep is not None:  # its last "online" beat must not land after "offline"
            self._upkeep.join(timeout=5)
        self.upkeep.heartbeat("offline")
        self.events.flush(timeout=2.0)  # the last events and the offline beat, if Redis is up
        if self._listener is not None:
            self._listener.join(timeout=5)
        log.info("worker %s stopped: %s", cfg.worker_id, self.stats.as_dict())

    def _release(self, job: ClaimedJob) -> None:
        completion = Completion.release(job)

        def released(_c: Completion, status: Any) -> None:
            self.wakeups.jobs(job.queue, [job.id])
            with self._cond:
                self._named.pop(job.id, None)
            if status is not None and self.events.enabled:
                self._emit(job.id, job.attempt, status, job.automation, job.queue)

        self.writer.finish(completion, released)
