"""Two browser jobs log in to one portal account at the same moment, each with its own code."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pyotp
import pytest

from botyard.demo import PortalAccount, serve_portal
from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System

pytestmark = pytest.mark.browser


@pytest.fixture
def portal() -> Iterator[tuple[str, PortalAccount]]:
    account = PortalAccount(
        email="ops1@example.com",
        password="portal-password-1",
        totp_secret=pyotp.random_base32(),
        interval=2,
    )
    url, stop = serve_portal({account.email: account})
    try:
        yield url, account
    finally:
        stop()


def test_two_jobs_on_one_account_get_increasing_steps_and_both_log_in(
    system: System, store_for: SqlStore, portal: tuple[str, PortalAccount]
) -> None:
    url, account = portal
    system.env.update(
        BOTYARD_WORKER_TOKEN="portal-worker-token",
        TOTP_MIN_VALIDITY="0.5",
        BOTYARD_CONCURRENCY_LIMITS="metrofiber:*=2",  # both at once on the one account
        METROFIBER_OPS1_TOTP_SECRET=account.totp_secret,
        METROFIBER_OPS1_TOTP_INTERVAL="2",
    )
    system.server()
    del system.env["METROFIBER_OPS1_TOTP_SECRET"]  # the orchestrator's alone
    system.env.update(
        METROFIBER_OPS1_EMAIL=account.email,
        METROFIBER_OPS1_PASSWORD=account.password,
        METROFIBER_PORTAL_URL=url,
    )
    system.worker("portal-worker", "--concurrency", "2")
    jobs = [
        system.submit("metrofiber.validation", {"circuit_number": number, "account": "ops1"})
        for number in ("FTTH-1001", "FTTH-1002")
    ]
    for job_id in jobs:
        system.wait_for(lambda j=job_id: system.job(j)["status"] == "succeeded", 120, "the job")
    first, second = (system.job(job_id) for job_id in jobs)
    # Both ran at once on the one account (limit 2): neither finished before the other started.
    assert str(first["started_at"]) < str(second["finished_at"])
    assert str(second["started_at"]) < str(first["finished_at"])
    steps = []
    for job_id in jobs:
        logs = " ".join(line.message for line in store_for.logs(job_id))
        steps += [int(s) for s in re.findall(r"TOTP code for metrofiber \(time step (\d+)", logs)]
        assert account.password not in logs
    assert len(steps) == 2 and steps[0] != steps[1]  # one time step each
    state = httpx.get(f"{url}/api/state").json()
    ops = state["accounts"]["ops1@example.com"]
    assert ops["logins"] == 2 and ops["rejected_codes"] == 0
    assert ops["last_step"] == max(steps)
    validated = {c["number"]: c["status"] for c in state["circuits"]}
    assert validated["FTTH-1001"] == validated["FTTH-1002"] == "validated"
