"""Per-client rate limits for the endpoints anyone may call: ``/token``, ``/privacy/data-request``.

A sliding window kept in memory: every request of a client within the last PERIOD counts, and a
request over COUNT is answered 429 with ``Retry-After`` (the seconds until the oldest counted
request leaves the window). Refused requests are not counted, so a client that waits as told gets
through. Each orchestrator process counts on its own: with several replicas behind a load
balancer a client can make up to (replicas x COUNT) requests per PERIOD. The client is the peer
address uvicorn reports, which already honours ``X-Forwarded-For`` from trusted proxies
(``FORWARDED_ALLOW_IPS``, 127.0.0.1 and ::1 by default); an IPv6 client counts as its /64
network, since one host usually holds a whole /64.

Apply a limit named in ``RateLimitSettings`` to a route with the dependency::

    @router.post("/privacy/data-request", dependencies=[Depends(rate_limited("data_request"))])
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request

from botyard.errors import RateLimitExceeded
from botyard.settings import Rate, RateLimitSettings


class SlidingWindow:
    """At most ``rate.count`` hits per key within any ``rate.seconds``; thread-safe."""

    def __init__(self, rate: Rate, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = clock()

    def hit(self, key: str) -> float:
        """Count a hit for ``key``: 0 when allowed, else the seconds until one would be."""
        now = self.clock()
        start = now - self.rate.seconds
        with self._lock:
            if now - self._swept >= self.rate.seconds:
                self._sweep(start)
                self._swept = now
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= start:
                hits.popleft()
            if len(hits) >= self.rate.count:
                return hits[0] - start
            hits.append(now)
            return 0.0

    def __len__(self) -> int:
        """How many clients are being tracked."""
        return len(self._hits)

    def _sweep(self, start: float) -> None:
        # Forget clients with nothing in the window, so memory follows recent clients only.
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= start]:
            del self._hits[key]


class RateLimiters:
    """The named limits of one app; a limit set to ``off`` lets every request through."""

    def __init__(self, rates: Mapping[str, Rate | None]) -> None:
        self.windows = {name: SlidingWindow(rate) for name, rate in rates.items() if rate}
        self.names = frozenset(rates)

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimiters:
        return cls({name: getattr(settings, name) for name in type(settings).model_fields})

    def check(self, name: str, client: str) -> None:
        """Count a request of ``client``; raise ``RateLimitExceeded`` when it is over the limit."""
        if name not in self.names:
            raise KeyError(f"no rate limit named {name!r} (RateLimitSettings has {self.names})")
        window = self.windows.get(name)
        if window is None:
            return
        wait = window.hit(client)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimitExceeded(
                f"Too many requests: at most {window.rate}; retry after {retry_after} s",
                retry_after=retry_after,
            )


def client_key(host: str) -> str:
    """What a limit counts against: the IPv4 address, or the /64 network of an IPv6 one."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # "testclient", a unix socket peer…
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def rate_limited(name: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that counts the request against the limit ``name`` of the caller's IP."""
    if name not in RateLimitSettings.model_fields:
        raise ValueError(f"no rate limit named {name!r} in RateLimitSettings")

    async def dependency(request: Request) -> None:
        limiters: RateLimiters = request.app.state.rate_limiters
        limiters.check(name, client_key(request.client.host) if request.client else "unknown")

    return dependency
