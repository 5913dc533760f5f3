"""The TOTP manager over the real ledger in the store: RFC 6238 vectors, no code twice."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from tests.conftest import truncate

from botyard.credentials import Credentials, EnvironmentSource
from botyard.store import open_store
from botyard.totp import Ledger, SqlLedger, TotpCode, TotpManager, TotpNotConfigured, Wait
from botyard.totp.redis_ledger import RedisLedger

SEEDS = {  # RFC 6238, Appendix B
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [  # time, SHA1, SHA256, SHA512
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """The same contract on each ledger: the job store (SQLite, PostgreSQL) and Redis."""
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        prefix = f"botyard-test:{secrets.token_hex(4)}:totp:"
        try:
            yield RedisLedger(client, prefix=prefix)
        finally:
            for key in client.scan_iter(f"{prefix}*"):
                client.delete(key)
        return
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        truncate(url)
    else:
        url = f"sqlite:///{tmp_path}/botyard.db"
    store = open_store(url)
    try:
        yield SqlLedger(store.engine)
    finally:
        store.close()


def _environment(**extra: str) -> dict[str, str]:
    env = {}
    for algorithm, seed in SEEDS.items():
        prefix = f"RFC_{algorithm}"
        env[f"{prefix}_TOTP_SECRET"] = base64.b32encode(seed).decode()
        env[f"{prefix}_TOTP_DIGITS"] = "8"
        env[f"{prefix}_TOTP_ALGORITHM"] = algorithm
    return {**env, **extra}


def test_rfc_6238_vectors_pass_through_the_manager(ledger: Ledger) -> None:
    now = [0.0]
    manager = TotpManager(
        Credentials([EnvironmentSource(_environment())]),
        ledger,
        min_validity=0.0,
        clock=lambda: now[0],
    )
    for moment, *codes in VECTORS:
        now[0] = moment
        for algorithm, expected in zip(SEEDS, codes, strict=True):
            answer = manager.next_code(f"rfc_{algorithm.lower()}")
            assert isinstance(answer, TotpCode), (moment, algorithm)
            assert (answer.code, answer.time_step) == (expected, moment // 30)


def test_a_step_is_handed_out_once_and_short_validity_waits(ledger: Ledger) -> None:
    now = [999_999_995.0]  # 25 s left in the step
    env = EnvironmentSource(
        {"ACME_TOTP_SECRET": pyotp.random_base32(), "ACME_EAST_TOTP_SECRET": pyotp.random_base32()}
    )
    manager = TotpManager(Credentials([env]), ledger, clock=lambda: now[0])
    first = manager.next_code("acme")
    assert isinstance(first, TotpCode) and first.valid_for == 25.0
    second = manager.next_code("acme")  # the same step for another job: wait for the next
    assert isinstance(second, Wait) and 25.0 < second.seconds < 25.1
    now[0] += second.seconds
    third = manager.next_code("acme")
    assert isinstance(third, TotpCode) and third.time_step == first.time_step + 1
    now[0] += 27  # 3 s left, under the 5 s minimum
    assert isinstance(manager.next_code("acme"), Wait)
    other = manager.next_code("acme", "east")  # another account of the provider: its own steps
    assert isinstance(other, Wait)  # 3 s left applies to it as well
    with pytest.raises(TotpNotConfigured, match="NOPE_TOTP_SECRET"):
        manager.next_code("nope")


def test_two_jobs_at_the_same_moment_get_increasing_steps(ledger: Ledger) -> None:
    secret = pyotp.random_base32()
    env = EnvironmentSource({"DEMO_TOTP_SECRET": secret, "DEMO_TOTP_INTERVAL": "2"})
    manager = TotpManager(Credentials([env]), ledger, min_validity=0.2)
    codes: list[TotpCode] = []
    start = threading.Barrier(2)

    def job() -> None:
        start.wait()
        codes.append(manager.code("demo", max_wait=10))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    steps = sorted(c.time_step for c in codes)
    assert len(steps) == 2 and steps[1] > steps[0]
    totp = pyotp.TOTP(secret, interval=2)
    for code in codes:
        assert code.code == totp.at(code.time_step * 2)


def test_consumption_gives_the_success_rate(ledger: Ledger) -> None:
    now = [999_999_995.0]
    env = EnvironmentSource({"ACME_TOTP_SECRET": pyotp.random_base32()})
    manager = TotpManager(Credentials([env]), ledger, clock=lambda: now[0])
    for success in (True, True, False):
        assert isinstance(manager.next_code("acme"), TotpCode)
        manager.consumed("acme", None, success)
        now[0] += 30
    (figures,) = manager.figures()
    assert (figures.provider, figures.issued, figures.consumed) == ("acme", 3, 3)
    assert figures.success_rate == pytest.approx(2 / 3)
