"""What a job's supervisor reads on its lifeline: the running attempt and when to kill it."""

from __future__ import annotations

import math
import os
import time

from botyard.automations.supervisor import RECORD, Lifeline


def test_renewals_extend_the_running_attempt_and_idle_disarms_it() -> None:
    read, write = os.pipe()
    try:
        lifeline = Lifeline(read)
        now = time.monotonic()
        os.write(write, RECORD.pack(7, 1, now + 5) + RECORD.pack(7, 1, now + 3))
        assert lifeline.read()
        assert lifeline.job == (7, 1) and lifeline.kill_at == now + 5  # never shortened
        os.write(write, RECORD.pack(7, 1, now - 1)[:10])  # half a record: kept for later
        assert lifeline.read() and lifeline.kill_at == now + 5
        os.write(write, RECORD.pack(7, 1, now - 1)[10:] + RECORD.pack(8, 1, now - 1))
        assert lifeline.read()
        assert lifeline.job == (8, 1) and lifeline.expired()  # a new attempt: its own time
        os.write(write, RECORD.pack(0, 0, 0.0))
        assert lifeline.read()
        assert lifeline.job is None and lifeline.kill_at == math.inf
        assert not lifeline.expired() and lifeline.timeout() is None  # idle: never killed
        os.close(write)
        write = -1
        assert not lifeline.read()  # end of file: the worker is gone
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
