"""Automations the benchmark runs; the worker imports this file with ``--automations``.

Every one returns ``time.time()`` taken as the function starts, so the bench can tell when the
child began executing the job (the "start" of the enqueue→start latency).
"""

from __future__ import annotations

import time

from botyard import automation


@automation("bench.noop", max_attempts=1)
def noop(ctx: object) -> float:
    """Nothing at all (W1, W2)."""
    return time.time()


@automation("bench.sleep", max_attempts=1)
def sleep(ctx: object, seconds: float = 0.1) -> float:
    """Hold a slot for ``seconds`` without using the CPU (W3, warm-up)."""
    started = time.time()
    time.sleep(seconds)
    return started


@automation("bench.warmup", max_attempts=1)
def warmup(ctx: object, seconds: float = 0.4) -> float:
    """Occupy every slot once before a workload, so every child has started."""
    started = time.time()
    time.sleep(seconds)
    return started
