"""Rate limits for the endpoints anyone may call: logins, ``/privacy/data-request``.

A sliding window kept in memory: every event of a key within the last PERIOD counts, and one over
COUNT is refused 429 with ``Retry-After`` (the seconds until the oldest counted event leaves the
window). Each orchestrator process counts on its own: with several replicas behind a load
balancer a client gets up to (replicas x COUNT) per PERIOD.

The client is the peer address uvicorn reports. It honours ``X-Forwarded-For`` only from the
proxies in ``FORWARDED_ALLOW_IPS`` (none by default), so a client cannot choose the address it is
counted as. An IPv6 client counts as its /64 network, since one host usually holds a whole /64.

Logins (``LoginLimits``) count failed passwords only, keyed by address *and* account, by address
alone and by account alone; the data-subject request form counts every request of an address::

    @router.post("/privacy/data-request", dependencies=[Depends(rate_limited("data_request"))])
"""

from __future__ import annotations

import hashlib
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
        with self._lock:
            wait = self._wait(key)
            if wait == 0:
                self._hits[key].append(self.clock())
            return wait

    def add(self, key: str) -> None:
        """Count a hit of ``key`` whatever the limit."""
        with self._lock:
            self._wait(key)
            self._hits[key].append(self.clock())

    def take_back(self, key: str) -> None:
        """Uncount the latest hit of ``key`` (it turned out not to be what the limit counts)."""
        with self._lock:
            hits = self._hits.get(key)
            if hits:
                hits.pop()

    def _wait(self, key: str) -> float:
        now = self.clock()
        start = now - self.rate.seconds
        if now - self._swept >= self.rate.seconds:
            self._sweep(start)
            self._swept = now
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= start:
            hits.popleft()
        return hits[0] - start if len(hits) >= self.rate.count else 0.0

    def __len__(self) -> int:
        """How many clients are being tracked."""
        return len(self._hits)

    def _sweep(self, start: float) -> None:
        # Forget clients with nothing in the window, so memory follows recent clients only.
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= start]:
            del self._hits[key]


REQUEST_LIMITS = ("data_request",)  # the RateLimitSettings that count requests per address


class RateLimiters:
    """The named limits of one app; a limit set to ``off`` lets every request through."""

    def __init__(self, rates: Mapping[str, Rate | None]) -> None:
        self.windows = {name: SlidingWindow(rate) for name, rate in rates.items() if rate}
        self.names = frozenset(rates)

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimiters:
        return cls({name: getattr(settings, name) for name in REQUEST_LIMITS})

    def check(self, name: str, client: str) -> None:
        """Count a request of ``client``; raise ``RateLimitExceeded`` when it is over the limit."""
        if name not in self.names:
            raise KeyError(f"no rate limit named {name!r} (RateLimitSettings has {self.names})")
        window = self.windows.get(name)
        if window is None:
            return
        wait = window.hit(client)
        if wait > 0:
            raise _exceeded(f"Too many requests: at most {window.rate}", wait)


def _exceeded(message: str, wait: float) -> RateLimitExceeded:
    retry_after = max(1, math.ceil(wait))  # never 0: "Retry-After: 0" would invite a flood
    return RateLimitExceeded(f"{message}; retry after {retry_after} s", retry_after=retry_after)


class LoginLimits:
    """Failed logins: slow for a guesser, and nobody else's failures lock a user out.

    Three counts of failed passwords, checked before the password is (so a refused guess costs
    no password hash):

    - per client address and account (``TOKEN_RATE_LIMIT``): one place guessing one account.
      Other accounts at the same address (people behind one NAT or proxy) are not touched.
    - per client address over every account (``LOGIN_ADDRESS_RATE_LIMIT``): one place trying
      many names, each a hash to verify. Set far above what people mistyping behind one NAT
      reach; once it is full, that address is refused for every account except those that
      logged in there successfully (see below), so a newcomer there waits out the flood.
    - per account from every address (``LOGIN_ACCOUNT_RATE_LIMIT``): guesses spread over many
      addresses. Once it is full the account is refused from every address except those it
      logged in from successfully, so whoever floods an account with wrong passwords cannot
      lock its owner out at their usual address.

    The known (account, address) pairs are kept in this process's memory only: since it
    started, at most ``KNOWN_FOR`` ago, the latest ``_MAX_KNOWN``; a restart forgets them.

    ``check`` counts the attempt as a failure at once, so parallel guesses cannot pass a full
    window; ``succeeded`` takes it back for a correct password.
    """

    KNOWN_FOR = 30 * 86400.0
    _MAX_KNOWN = 10_000

    def __init__(
        self,
        per_address: Rate | None,
        per_account: Rate | None,
        *,
        per_client: Rate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address = SlidingWindow(per_address, clock=clock) if per_address else None
        self.per_account = SlidingWindow(per_account, clock=clock) if per_account else None
        self.per_client = SlidingWindow(per_client, clock=clock) if per_client else None
        self.clock = clock
        self._known: dict[tuple[str, str], float] = {}  # (account, address) -> last success
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> LoginLimits:
        return cls(settings.token, settings.login_account, per_client=settings.login_address)

    def check(self, account: str, address: str) -> None:
        """Count a login of ``account`` from ``address`` as failed until ``succeeded``; raise
        ``RateLimitExceeded`` (counting nothing) when it must wait."""
        account = _digest(account)
        pair = f"{address} {account}"
        if self.per_address is not None:
            wait = self.per_address.hit(pair)
            if wait > 0:
                rate = self.per_address.rate
                raise _exceeded(f"Too many failed logins: at most {rate} per account", wait)
        known = self._is_known(account, address)
        if self.per_client is not None:
            if known:
                self.per_client.add(address)
            elif wait := self.per_client.hit(address):
                self._take_back(pair, None)
                rate = self.per_client.rate
                raise _exceeded(f"Too many failed logins from this address: at most {rate}", wait)
        if self.per_account is None:
            return
        if known:
            self.per_account.add(account)
            return
        wait = self.per_account.hit(account)
        if wait > 0:
            self._take_back(pair, address)
            rate = self.per_account.rate
            raise _exceeded(f"Too many failed logins of this account: at most {rate}", wait)

    def _take_back(self, pair: str, address: str | None) -> None:
        if self.per_address is not None:
            self.per_address.take_back(pair)
        if address is not None and self.per_client is not None:
            self.per_client.take_back(address)

    def succeeded(self, account: str, address: str) -> None:
        """The password was right: not a failure, and ``address`` is where the account logs in."""
        account = _digest(account)
        self._take_back(f"{address} {account}", address)
        if self.per_account is not None:
            self.per_account.take_back(account)
        with self._lock:
            if len(self._known) >= self._MAX_KNOWN:  # keep the most recent half
                recent = sorted(self._known.items(), key=lambda item: item[1])
                self._known = dict(recent[self._MAX_KNOWN // 2 :])
            self._known[(account, address)] = self.clock()

    def _is_known(self, account: str, address: str) -> bool:
        with self._lock:
            since = self._known.get((account, address))
        return since is not None and self.clock() - since < self.KNOWN_FOR


def _digest(account: str) -> str:
    # What was typed as a name may be long (or someone's password): keep a digest of it only.
    return hashlib.sha256(account.encode(errors="surrogatepass")).hexdigest()[:32]


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
    if name not in REQUEST_LIMITS:
        raise ValueError(f"no rate limit named {name!r} in RateLimitSettings")

    async def dependency(request: Request) -> None:
        limiters: RateLimiters = request.app.state.rate_limiters
        limiters.check(name, client_key(request.client.host) if request.client else "unknown")

    return dependency
