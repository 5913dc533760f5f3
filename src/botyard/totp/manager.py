"""The TOTP manager: fresh codes from secrets that never leave the orchestrator.

For each account the time steps handed out strictly increase (a portal refuses a code used
before), and a code with less than ``min_validity`` seconds left is not handed out: the caller
waits for the next step. ``next_code`` never sleeps itself; it says how long to wait, so that
the API can wait without holding a thread.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp

from botyard.credentials import Credentials, prefix_of
from botyard.errors import BotyardError, ConfigurationError
from botyard.totp.ledger import Ledger, ProviderFigures

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


class TotpError(BotyardError):
    """No TOTP code could be handed out."""


class TotpNotConfigured(TotpError):
    """No TOTP secret is configured for this account."""


class TotpUnavailable(TotpError):
    """No fresh time step became free in time."""


@dataclass(frozen=True, slots=True)
class TotpCode:
    provider: str
    account: str | None
    code: str
    time_step: int
    valid_for: float

    def __repr__(self) -> str:
        return f"TotpCode({self.provider!r}, step={self.time_step}, valid_for={self.valid_for:.1f})"


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class Spec:
    secret: str
    digits: int
    interval: int
    algorithm: str

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(
            self.secret, digits=self.digits, digest=DIGESTS[self.algorithm], interval=self.interval
        )


def account_key(provider: str, account: str | None) -> str:
    return f"{provider}:{account}" if account else provider


class TotpManager:
    def __init__(
        self,
        credentials: Credentials,
        ledger: Ledger,
        *,
        min_validity: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self.ledger = ledger
        self.min_validity = min_validity
        self.clock = clock

    def spec(self, provider: str, account: str | None = None) -> Spec:
        """``<PREFIX>_TOTP_SECRET`` (base32), ``_TOTP_DIGITS`` (6), ``_TOTP_INTERVAL`` (30 s),
        ``_TOTP_ALGORITHM`` (SHA1, SHA256 or SHA512)."""
        prefix = prefix_of(provider, account)
        secret = self.credentials.get_secret(f"{prefix}_TOTP_SECRET")
        if secret is None:
            raise TotpNotConfigured(f"{prefix}_TOTP_SECRET is not set", provider=provider)
        digits = self.credentials.get_int(f"{prefix}_TOTP_DIGITS", 6) or 6
        interval = self.credentials.get_int(f"{prefix}_TOTP_INTERVAL", 30) or 30
        algorithm = (self.credentials.get(f"{prefix}_TOTP_ALGORITHM") or "SHA1").upper()
        if algorithm not in DIGESTS or digits not in (6, 7, 8) or interval < 1:
            raise ConfigurationError(
                f"{prefix}_TOTP_*: algorithm SHA1/SHA256/SHA512, 6 to 8 digits, interval ≥ 1 s"
            )
        return Spec(secret.get_secret_value().replace(" ", "").upper(), digits, interval, algorithm)

    def next_code(self, provider: str, account: str | None = None) -> TotpCode | Wait:
        """A code now, or how long to wait before asking again."""
        spec = self.spec(provider, account)
        now = self.clock()
        step = int(now // spec.interval)
        left = (step + 1) * spec.interval - now
        if left < self.min_validity:
            return Wait(left + 0.01)  # too little time left: the next step
        if not self.ledger.claim(account_key(provider, account), provider, step):
            return Wait(left + 0.01)  # this step went to another job: the next one
        try:
            code = spec.totp().at(step * spec.interval)
        except Exception as exc:  # a malformed secret: say so without showing it
            raise ConfigurationError(
                f"{prefix_of(provider, account)}_TOTP_SECRET is not valid base32"
            ) from exc
        return TotpCode(provider, account, code, step, round(left, 3))

    def code(
        self, provider: str, account: str | None = None, *, max_wait: float = 90.0
    ) -> TotpCode:
        """Wait (sleeping this thread) until a code can be handed out."""
        deadline = time.monotonic() + max_wait
        while True:
            answer = self.next_code(provider, account)
            if isinstance(answer, TotpCode):
                return answer
            if time.monotonic() + answer.seconds > deadline:
                raise TotpUnavailable(f"no free time step for {provider} within {max_wait:g} s")
            time.sleep(answer.seconds)

    def consumed(self, provider: str, account: str | None, success: bool) -> None:
        self.ledger.consumed(account_key(provider, account), success)

    def figures(self) -> list[ProviderFigures]:
        return self.ledger.figures()
