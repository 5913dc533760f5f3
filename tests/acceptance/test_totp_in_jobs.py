"""``ctx.totp`` in a job run by a real worker: codes from the orchestrator, never the secret."""

from __future__ import annotations

import time

import pyotp

from botyard.store.sql import SqlStore
from tests.acceptance.conftest import System


def _steps_of(totp: pyotp.TOTP, code: str, interval: int) -> list[int]:
    """The recent time steps whose code is ``code``."""
    now = int(time.time() // interval)
    return [step for step in range(now - 60, now + 2) if totp.at(step * interval) == code]


def test_a_job_gets_fresh_codes_from_the_orchestrator(system: System, store_for: SqlStore) -> None:
    secret = pyotp.random_base32()
    system.env.update(BOTYARD_WORKER_TOKEN="totp-jobs-token", TOTP_MIN_VALIDITY="0.5")
    system.env.update(ACCEPT_TOTP_SECRET=secret, ACCEPT_TOTP_INTERVAL="2")
    system.server()
    # The orchestrator holds the secret; the worker only has the URL and the worker token.
    del system.env["ACCEPT_TOTP_SECRET"]
    system.worker("totp-worker")
    job_id = system.submit("accept.totp", {})
    system.wait_for(lambda: system.job(job_id)["status"] == "succeeded", 60, "the job")
    result = system.job(job_id)["result"]
    assert isinstance(result, dict)
    totp = pyotp.TOTP(secret, interval=2)
    first, second = _steps_of(totp, result["first"], 2), _steps_of(totp, result["second"], 2)
    assert first and second and max(second) > min(first)  # a later step for the second code
    logs = " ".join(line.message for line in store_for.logs(job_id))
    assert "TOTP code for accept" in logs
    assert result["first"] not in logs and result["second"] not in logs  # no code in the logs
    figures = system.api("GET", "/totp/metrics").json()
    assert (figures[0]["issued"], figures[0]["succeeded"], figures[0]["failed"]) == (2, 1, 1)
