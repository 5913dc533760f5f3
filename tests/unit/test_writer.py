"""The worker's writer: a report the store refuses for good must not hold up later writes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import cast

import pytest

from botyard.errors import StoreUnavailable
from botyard.store.records import Activity
from botyard.store.sql import SqlStore
from botyard.worker.writer import StoreWriter


class _Store:
    """Refuses the log line "poison" for good, and fails the first write as an outage."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.outages = 1
        self.done = threading.Event()

    def record_activity(self, items: list[Activity]) -> int:
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable()
        if any(item.data["message"] == "poison" for item in items):
            raise ValueError("the store refuses this row")
        self.stored.extend(item.data["message"] for item in items)
        if "last" in self.stored:
            self.done.set()
        return 0


def _line(message: str) -> Activity:
    return Activity(1, 1, datetime.now(UTC), "log", {"level": "INFO", "message": message})


def test_a_refused_report_is_dropped_and_the_others_are_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Store()
    writer = StoreWriter(cast(SqlStore, store))
    for message in ("first", "poison", "last"):
        writer.activity(_line(message))
    writer.start()

    assert store.done.wait(10), "the writer is stuck behind the refused report"
    writer.stop()
    assert store.stored == ["first", "last"]  # the outage was retried, the refusal dropped
    assert any("dropped a report of job 1" in r.getMessage() for r in caplog.records)
