"""One complaint a minute: for failures that repeat while a service is away (Redis, say)."""

from __future__ import annotations

import logging
import threading
import time


class LogThrottle:
    """Logs through ``logger`` at most once a minute, however often it is called."""

    EVERY = 60.0

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._last = -self.EVERY
        self._lock = threading.Lock()

    def __call__(self, message: str, *, level: int = logging.WARNING) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.EVERY:
                return
            self._last = now
        self.logger.log(level, "%s (logged at most once a minute)", message)
