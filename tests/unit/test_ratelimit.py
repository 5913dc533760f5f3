"""The sliding window behind the 429s: counts per client, forgets old hits, tells when to retry."""

from __future__ import annotations

import pytest

from botyard.errors import RateLimitExceeded
from botyard.orchestrator.ratelimit import (
    LoginLimits,
    RateLimiters,
    SlidingWindow,
    client_key,
    rate_limited,
)
from botyard.settings import Rate, RateLimitSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_slides_per_client() -> None:
    clock = Clock()
    window = SlidingWindow(Rate(3, 60), clock=clock)
    for step in range(3):
        clock.now += step  # hits at 1000, 1001, 1003
        assert window.hit("10.0.0.1") == 0
    assert window.hit("10.0.0.1") == pytest.approx(57)  # the first hit leaves at 1060
    assert window.hit("10.0.0.2") == 0  # another client has its own budget
    clock.now = 1059.5
    assert window.hit("10.0.0.1") == pytest.approx(0.5)
    clock.now = 1060.0
    assert window.hit("10.0.0.1") == 0  # one slot free again, taken now
    assert window.hit("10.0.0.1") == pytest.approx(1)  # the next frees at 1061


def test_refused_hits_do_not_extend_the_wait() -> None:
    clock = Clock()
    window = SlidingWindow(Rate(1, 10), clock=clock)
    assert window.hit("c") == 0
    for _ in range(100):
        clock.now += 0.05
        assert window.hit("c") > 0
    clock.now = 1010.0
    assert window.hit("c") == 0


def test_idle_clients_are_forgotten() -> None:
    clock = Clock()
    window = SlidingWindow(Rate(2, 60), clock=clock)
    for n in range(1000):
        window.hit(f"10.0.{n // 256}.{n % 256}")
    assert len(window) == 1000
    clock.now += 61
    window.hit("10.1.0.1")
    assert len(window) == 1


def test_limiters_raise_with_whole_seconds_to_wait() -> None:
    limiters = RateLimiters({"token": Rate(1, 0.2), "data_request": None})
    limiters.check("token", "c")
    with pytest.raises(RateLimitExceeded) as refused:
        limiters.check("token", "c")
    assert refused.value.retry_after == 1  # never 0: "Retry-After: 0" would invite a flood
    assert "at most 1/0.2s" in str(refused.value)
    for _ in range(50):
        limiters.check("data_request", "c")  # off


def test_limits_come_from_settings_by_name() -> None:
    limiters = RateLimiters.from_settings(RateLimitSettings())
    assert limiters.names == {"data_request"}  # logins have LoginLimits
    with pytest.raises(KeyError):
        limiters.check("nope", "c")
    with pytest.raises(ValueError, match="no rate limit named 'nope'"):
        rate_limited("nope")


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same host, another address
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
    ],
)
def test_client_keys(host: str, key: str) -> None:
    assert client_key(host) == key


def test_failed_logins_count_per_address_and_account_never_across_accounts() -> None:
    clock = Clock()
    limits = LoginLimits(Rate(3, 60), Rate(100, 3600), clock=clock)
    for _ in range(3):
        limits.check("admin", "10.0.0.1")  # counted as failed unless it succeeds
    with pytest.raises(RateLimitExceeded) as refused:
        limits.check("admin", "10.0.0.1")
    assert refused.value.retry_after == 60
    limits.check("vera", "10.0.0.1")  # another user behind the same address is not touched
    limits.check("admin", "10.0.0.2")  # nor the same user elsewhere
    for _ in range(50):
        limits.check("vera", "10.0.0.1")
        limits.succeeded("vera", "10.0.0.1")  # correct passwords are not counted
    clock.now += 60
    limits.check("admin", "10.0.0.1")


def test_an_account_flooded_from_many_addresses_stays_open_where_its_owner_logs_in() -> None:
    clock = Clock()
    limits = LoginLimits(Rate(3, 60), Rate(20, 3600), clock=clock)
    limits.succeeded("admin", "192.0.2.10")  # the owner's usual address
    for n in range(20):
        address = f"203.0.113.{n}"
        limits.check("admin", address)
    with pytest.raises(RateLimitExceeded, match="of this account"):
        limits.check("admin", "203.0.113.99")  # a new address: the account's limit holds
    limits.check("admin", "192.0.2.10")  # its owner is not locked out
    limits.check("vera", "203.0.113.99")  # nor any other account
    clock.now += 3600
    limits.check("admin", "203.0.113.99")  # the failures left the window

    clock.now += LoginLimits.KNOWN_FOR  # an address is known for KNOWN_FOR, not for ever
    for n in range(20):
        limits.check("admin", f"198.51.100.{n}")
    with pytest.raises(RateLimitExceeded):
        limits.check("admin", "192.0.2.10")


def test_failures_per_address_over_all_accounts_are_capped_but_known_accounts_pass() -> None:
    clock = Clock()
    limits = LoginLimits(Rate(10, 60), Rate(50, 3600), per_client=Rate(5, 600), clock=clock)
    limits.succeeded("vera", "10.0.0.1")
    for n in range(5):
        limits.check(f"name{n}", "10.0.0.1")
    with pytest.raises(RateLimitExceeded, match="from this address") as refused:
        limits.check("name99", "10.0.0.1")  # before: never refused, whatever the count
    assert refused.value.retry_after == 600
    limits.check("vera", "10.0.0.1")  # an account that logged in here is not locked out
    limits.succeeded("vera", "10.0.0.1")
    limits.check("name99", "10.0.0.2")  # nor is another address
    clock.now += 600
    limits.check("name99", "10.0.0.1")


def test_login_limits_off() -> None:
    limits = LoginLimits(None, None)
    for _ in range(100):
        limits.check("admin", "10.0.0.1")


def test_what_was_typed_as_a_name_is_kept_as_a_short_digest() -> None:
    limits = LoginLimits(Rate(3, 60), Rate(10, 3600))
    typed = "a password typed into the name field " * 30_000  # about 1 MiB
    limits.check(typed, "10.0.0.1")
    assert limits.per_address is not None and limits.per_account is not None
    keys = [*limits.per_address._hits, *limits.per_account._hits]
    assert len(keys) == 2 and all(len(key) < 64 and "password" not in key for key in keys)
