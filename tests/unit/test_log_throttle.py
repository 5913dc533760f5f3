"""Repeated errors: one line with the traceback, then one line with the count, per interval."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from botyard.log_throttle import LogThrottle, fingerprint
from botyard.orchestrator import errors


def _boom(n: int) -> None:
    raise RuntimeError(f"disk full while writing job {n}")


def _caught(n: int) -> RuntimeError:
    try:
        _boom(n)
    except RuntimeError as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_burst_is_one_line_then_its_count(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.throttle")
    throttle = LogThrottle(logger, every=0.3)
    with caplog.at_level(logging.WARNING, logger="tests.throttle"):
        logged = [throttle("the disk is full", key="disk") for _ in range(50)]
        assert logged == [True] + [False] * 49
        assert throttle("Redis is away", key="redis") is True  # another kind has its own line
        assert len(caplog.records) == 2
        deadline = time.monotonic() + 10
        while len(caplog.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the interval ends on a timer: the count needs no further call
        time.sleep(0.4)  # nothing else comes: Redis, which did not repeat, has no count line
        lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "the disk is full (logged at most once every 0.3 s)"
    assert lines[2].startswith("the disk is full (and 49 more like it in the last 0.")
    assert len(lines) == 3
    assert throttle("the disk is full", key="disk") is True  # a new interval, a new line


def test_the_same_error_has_one_fingerprint_whatever_its_message() -> None:
    assert fingerprint(_caught(1)) == fingerprint(_caught(2))
    try:
        raise RuntimeError("disk full while writing job 1")
    except RuntimeError as elsewhere:
        assert fingerprint(elsewhere) != fingerprint(_caught(1))


def test_unhandled_errors_answer_500_and_log_one_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/write/{n}")
    def write(n: int) -> None:
        _boom(n)

    # The default raise_server_exceptions=True: an error raised again after the 500 (as
    # Starlette's own handler does, for the server to log a second traceback) fails the test.
    client = TestClient(app)
    with caplog.at_level(logging.ERROR, logger="botyard.api"):
        answers = [client.get(f"/write/{n}") for n in range(30)]
    assert {a.status_code for a in answers} == {500}
    assert answers[0].json()["error_type"] == "InternalError"
    assert "disk full" not in answers[0].text
    (record,) = [r for r in caplog.records if r.name == "botyard.api"]
    assert record.getMessage().startswith("unhandled error RuntimeError at test_log_throttle.py:")
    assert record.exc_info is not None and "job 0" in str(record.exc_info[1])
