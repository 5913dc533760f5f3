"""One complaint a minute: for failures that repeat (Redis away, a full disk failing every request).

The first occurrence of a kind is logged as it comes; the repeats within the minute are only
counted, and the count is logged once when the minute is over, so that a burst of a thousand
identical tracebacks is two lines in the log, not a thousand tracebacks.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Window:
    message: str
    level: int
    started: float = field(default_factory=time.monotonic)
    repeats: int = 0


class LogThrottle:
    """Logs through ``logger`` at most once every ``every`` seconds per key, counting the rest."""

    EVERY = 60.0
    MAX_KINDS = 256  # a flood of distinct keys cannot grow this without bound

    def __init__(self, logger: logging.Logger, every: float = EVERY) -> None:
        self.logger = logger
        self.every = every
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    @property
    def _period(self) -> str:
        return "a minute" if self.every == 60 else f"every {self.every:g} s"

    def __call__(
        self, message: str, *, level: int = logging.WARNING, key: str = "", exc_info: Any = None
    ) -> bool:
        """Log ``message`` unless ``key`` was logged less than ``every`` seconds ago; True if
        logged. ``exc_info`` goes with the logged line (a traceback once, not once a request)."""
        with self._lock:
            window = self._windows.get(key)
            if window is not None:
                window.repeats += 1
                return False
            if len(self._windows) >= self.MAX_KINDS:
                return False
            # The window ends on a timer, so that the count of its repeats is logged even when
            # nothing comes after them.
            ending = threading.Timer(self.every, self._close, (key,))
            ending.daemon = True
            self._windows[key] = _Window(message, level)
            ending.start()
        self.logger.log(
            level, "%s (logged at most once %s)", message, self._period, exc_info=exc_info
        )
        return True

    def _close(self, key: str) -> None:
        with self._lock:
            window = self._windows.pop(key, None)
        if window is not None and window.repeats:
            self.logger.log(
                window.level,
                "%s (and %d more like it in the last %g s)",
                window.message,
                window.repeats,
                round(time.monotonic() - window.started, 1),
            )


def fingerprint(exc: BaseException) -> str:
    """A key for "the same error": its type and every frame it came through, not its message
    (which carries ids and values that differ from one occurrence to the next)."""
    frames = traceback.extract_tb(exc.__traceback__)
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    path = "|".join(f"{f.filename}:{f.lineno}" for f in frames)
    return hashlib.blake2b(f"{kind}|{path}".encode(), digest_size=12).hexdigest()
