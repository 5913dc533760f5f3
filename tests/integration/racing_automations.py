"""Automations of the lease-renewal race tests, loaded in the worker's children by file path."""

from __future__ import annotations

import time

from botyard import JobContext, automation


@automation("race.slow_then_flaky", max_attempts=2)
def slow_then_flaky(ctx: JobContext, seconds: float) -> dict[str, int]:
    """Runs for ``seconds``; the first attempt then fails, the second succeeds."""
    time.sleep(seconds)
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails on purpose")
    return {"attempt": ctx.attempt}
