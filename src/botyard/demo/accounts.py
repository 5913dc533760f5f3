"""The portal's accounts and its one-time-code check, which refuses a time step used before."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyotp

_DIGESTS: dict[str, Callable[..., Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}


@dataclass(frozen=True)
class PortalAccount:
    """A login on the demo portal: email, password and the TOTP parameters of its second factor."""

    email: str
    password: str = field(repr=False)
    totp_secret: str = field(repr=False)
    digits: int = 6
    interval: int = 30
    algorithm: str = "SHA1"

    def __post_init__(self) -> None:
        if self.algorithm not in _DIGESTS:
            raise ValueError(f"algorithm must be one of {', '.join(_DIGESTS)}")
        if not 6 <= self.digits <= 10:
            raise ValueError("digits must be between 6 and 10")
        if not 0 < self.interval <= 120:
            raise ValueError("interval must be between 1 and 120 seconds")
        try:
            base64.b32decode(self.totp_secret + "=" * (-len(self.totp_secret) % 8), casefold=True)
        except binascii.Error:
            raise ValueError("totp_secret is not base32") from None

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(
            self.totp_secret,
            digits=self.digits,
            digest=_DIGESTS[self.algorithm],
            interval=self.interval,
        )


# Demo only: these credentials are published with the code and protect nothing.
DEMO_ACCOUNT = PortalAccount(
    email="ops@example.com",
    password="metrofibre-demo",
    totp_secret="NVSXI4TPMZUWE4TFFVSGK3LPFVXW43DZ",
)


class CodeCheck(Enum):
    """What the portal made of a one-time code."""

    ACCEPTED = "accepted"
    INVALID = "invalid"
    REUSED = "reused"


@dataclass
class AccountFigures:
    """Per-account counters, published by ``/api/state``."""

    logins: int = 0  # codes accepted
    last_step: int | None = None  # the time step of the last accepted code
    rejected_codes: int = 0  # wrong, expired or reused codes


class CodeLedger:
    """Checks codes and remembers each account's last accepted time step.

    A code is valid for the current time step and the previous one, but only once: its step
    must be strictly greater than the last step accepted for the account, as on real portals
    that refuse a replayed code.
    """

    def __init__(self, accounts: list[PortalAccount]) -> None:
        self._lock = threading.Lock()
        self._figures = {account.email: AccountFigures() for account in accounts}

    def check(self, account: PortalAccount, code: str, now: float) -> CodeCheck:
        step = _matching_step(account, code.strip(), now)
        with self._lock:
            figures = self._figures[account.email]
            if step is None:
                figures.rejected_codes += 1
                return CodeCheck.INVALID
            if figures.last_step is not None and step <= figures.last_step:
                figures.rejected_codes += 1
                return CodeCheck.REUSED
            figures.last_step = step
            figures.logins += 1
            return CodeCheck.ACCEPTED

    def snapshot(self) -> dict[str, AccountFigures]:
        with self._lock:
            return {
                email: AccountFigures(f.logins, f.last_step, f.rejected_codes)
                for email, f in self._figures.items()
            }


def _matching_step(account: PortalAccount, code: str, now: float) -> int | None:
    """The time step, current or previous, whose code is ``code``; the newest wins."""
    if len(code) != account.digits or not code.isdigit():
        return None
    totp = account.totp()
    current = totp.timecode(now)
    for offset in (0, -1):
        if hmac.compare_digest(totp.at(now, counter_offset=offset), code):
            return current + offset
    return None


def password_matches(account: PortalAccount | None, password: str) -> bool:
    """Compares in constant time, and as long for an unknown email as for a known one."""
    expected = account.password if account is not None else "\0" * max(len(password), 1)
    same = hmac.compare_digest(expected.encode(), password.encode())
    return account is not None and same
