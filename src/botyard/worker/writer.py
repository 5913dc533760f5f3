"""One thread that writes what running attempts report, in order and in batches."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from botyard.errors import StoreUnavailable
from botyard.jobs import JobStatus
from botyard.store.records import Activity, Completion
from botyard.store.sql import SqlStore

log = logging.getLogger("botyard.worker")

_BATCH = 512


@dataclass(frozen=True, slots=True)
class _SideEffect:
    job_id: int
    attempt: int
    name: str
    reply: Future[bool]


@dataclass(frozen=True, slots=True)
class _Finish:
    completion: Completion
    done: Callable[[Completion, JobStatus | None], None]


class StoreWriter:
    """Activity is fire-and-forget; a side-effect mark is acknowledged once it is stored."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="botyard-writer", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def activity(self, item: Activity) -> None:
        self._queue.put(item)

    def side_effect(self, job_id: int, attempt: int, name: str) -> bool:
        reply: Future[bool] = Future()
        self._queue.put(_SideEffect(job_id, attempt, name, reply))
        return reply.result()

    def finish(
        self, completion: Completion, done: Callable[[Completion, JobStatus | None], None]
    ) -> None:
        self._queue.put(_Finish(completion, done))

    def stop(self) -> None:
        """Write everything queued so far, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < _BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in items)
            self._write([item for item in items if item is not None])
            if stop:
                return

    def _write(self, items: list[Any]) -> None:
        start = 0
        while start < len(items):
            kind = type(items[start])
            end = start
            while end < len(items) and type(items[end]) is kind:
                end += 1
            self._retrying(self._write_run, items[start:end])
            start = end

    def _write_run(self, run: list[Any]) -> None:
        first = run[0]
        if isinstance(first, Activity):
            self._record(run)
        elif isinstance(first, _SideEffect):
            for item in run:
                if not item.reply.done():
                    item.reply.set_result(
                        self.store.mark_side_effect(item.job_id, item.attempt, item.name)
                    )
        else:
            statuses = self.store.finish([item.completion for item in run])
            for item, status in zip(run, statuses, strict=True):
                try:
                    item.done(item.completion, status)
                except Exception:
                    log.exception("after finishing job %s", item.completion.job_id)

    def _record(self, run: list[Activity]) -> None:
        try:
            refused = self.store.record_activity(run)
        except StoreUnavailable:
            raise  # retried: the store is the truth
        except Exception:
            if len(run) == 1:
                # A report the store will never take (a bug, not an outage): retrying it would
                # hold up every later write of this worker, the finishes of its jobs among them.
                log.exception("dropped a report of job %s the store refuses", run[0].job_id)
                return
            for item in run:  # find the one that is refused; keep the others
                self._record([item])
            return
        if refused:
            log.debug("refused %d writes of attempts that lost their job", refused)

    @staticmethod
    def _retrying(write: Callable[[list[Any]], None], run: list[Any]) -> None:
        # The store is the truth: keep trying rather than drop a write. Should the outage outlast
        # the lease, the job is recovered elsewhere and these writes are then fenced out.
        delay = 0.1
        while True:
            try:
                write(run)
                return
            except Exception:
                log.exception("store write failed; retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
