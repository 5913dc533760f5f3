"""The bus interface every backend implements."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

JOBS = "jobs"  # value: a queue that has runnable jobs
CANCEL = "cancel"  # value: a job id whose running attempt must stop


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    value: str

    def encode(self) -> str:
        return json.dumps({"k": self.kind, "v": self.value}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | bytes) -> Event | None:
        try:
            data = json.loads(raw)
            return cls(str(data["k"]), str(data["v"]))
        except (ValueError, KeyError, TypeError):
            return None  # someone else's message on our channel: ignore it


class Subscription(Protocol):
    def wait(self, timeout: float) -> list[Event]:
        """Block up to ``timeout`` seconds for events; return every event that arrived."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every current subscriber; never raises for a missing listener."""
        ...

    def subscribe(self) -> Subscription: ...

    def close(self) -> None: ...
