"""Demo automations bundled with Botyard, used by ``botyard demo`` and ``botyard up``."""

from __future__ import annotations

import os
import time

from botyard import BusinessError, JobContext, automation


@automation("demo.hello", idempotent=True, timeout=60)
def hello(ctx: JobContext, name: str = "world", delay: float = 0.2) -> dict[str, str]:
    """Greets, after a short pause."""
    with ctx.step("greeting"):
        time.sleep(delay)
        ctx.log.info("hello, %s", name)
    return {"greeting": f"hello, {name}"}


@automation("demo.flaky", idempotent=True, max_attempts=3, timeout=60)
def flaky(ctx: JobContext, circuit_number: str) -> dict[str, str]:
    """Fails on its first attempt (a portal hiccup) and succeeds on the retry."""
    with ctx.step("logging in"):
        time.sleep(0.2)
        if ctx.attempt == 1:
            raise ConnectionError("portal timed out while logging in")
    with ctx.step("validating"):
        ctx.log.info("circuit %s is valid", circuit_number)
    return {"circuit_number": circuit_number, "status": "valid"}


@automation("demo.interrupted", timeout=60)
def interrupted(ctx: JobContext, circuit_number: str) -> None:
    """Starts cancelling a circuit and then loses its process: nobody knows if it happened."""
    with ctx.step("finding the circuit"):
        time.sleep(0.2)
    ctx.attach("before-cancel.txt", f"circuit {circuit_number} found, status active\n")
    with ctx.side_effect(f"cancel circuit {circuit_number}"):
        ctx.log.warning("the portal stopped answering mid-cancel")
        os._exit(1)  # the worker sees a crash after the side effect began


@automation("demo.lookup", timeout=60)
def lookup(ctx: JobContext, circuit_number: str) -> None:
    """Looks up a circuit that does not exist: a business error, never retried."""
    with ctx.step("searching"):
        time.sleep(0.2)
    raise BusinessError(f"circuit {circuit_number} does not exist on the portal")
