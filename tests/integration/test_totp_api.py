"""``/totp``: codes for running attempts (their credential), figures for viewers, no secrets."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pyotp
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text
from tests.api_helpers import MakeApi, assert_error_shape, token

from botyard import attempt_credentials
from botyard.jobs import Outcome
from botyard.settings import RedisSettings
from botyard.store import SqlStore
from botyard.store.records import Completion, NewJob

SECRET = pyotp.random_base32()
WORKER_TOKEN = "totp-api-worker-token"
WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}


def _running(
    store: SqlStore, worker_token: str = WORKER_TOKEN, provider: str = "demo"
) -> tuple[dict[str, str], int]:
    """A job of ``provider`` running its first attempt, and the header with its credential."""
    name = f"{provider}.totp"
    job, _ = store.submit(NewJob(name, {}, queue="totp-tests"))
    (claimed,) = store.claim("w1", queues=["totp-tests"], automations=[name], limit=1, lease_ttl=60)
    assert claimed.id == job.id
    credential = attempt_credentials.mint(worker_token, job.id, claimed.attempt)
    return {"Authorization": f"Bearer {credential}"}, job.id


def test_codes_consumption_and_figures(make_api: MakeApi, store_url: str) -> None:
    api = make_api(
        store_url,
        BOTYARD_WORKER_TOKEN="totp-api-worker-token",
        DEMO_TOTP_SECRET=SECRET,
        DEMO_TOTP_INTERVAL="2",
        TOTP_MIN_VALIDITY="0.5",
    )
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    assert api.post("/totp/demo/code").status_code == 401
    admin = token(api, "admin", "admin-password")
    assert api.post("/totp/demo/code", headers=admin).status_code == 401  # a person's JWT is not it
    assert api.post("/totp/demo/code", headers=WORKER).status_code == 401  # nor the worker token
    job_a, id_a = _running(store)
    job_b, id_b = _running(store)

    first = api.post("/totp/demo/code", json={"job_id": id_a}, headers=job_a).json()
    second = api.post("/totp/demo/code", json={"job_id": id_b}, headers=job_b).json()
    assert second["time_step"] > first["time_step"]  # the second waited for the next step
    for answer in (first, second):
        assert answer["code"] == pyotp.TOTP(SECRET, interval=2).at(answer["time_step"] * 2)
        assert 0.5 <= answer["valid_for"] <= 2

    for success in (True, False):
        ok = api.post("/totp/demo/consumed", json={"success": success}, headers=job_a)
        assert ok.json() == {"status": "recorded"}
    figures = api.get("/totp/metrics", headers=admin).json()
    assert figures == [
        {"provider": "demo", "issued": 2, "consumed": 2, "succeeded": 1, "failed": 1,
         "success_rate": 0.5}
    ]  # fmt: skip
    assert SECRET not in json.dumps(figures)
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse_text(api.get("/metrics", params={"format": "prometheus"}).text)
        for s in family.samples
    }
    assert scraped[("botyard_totp_codes_issued_total", (("provider", "demo"),))] == 2
    accepted = (("provider", "demo"), ("result", "accepted"))
    assert scraped[("botyard_totp_codes_consumed_total", accepted)] == 1

    osn_job, _ = _running(store, provider="osn")
    missing = api.post("/totp/osn/code", headers=osn_job)
    assert missing.status_code == 404 and "OSN_TOTP_SECRET" in missing.json()["detail"]
    assert_error_shape(missing.json())
    assert api.post("/totp/Bad-Name/code", headers=job_a).status_code == 422
    assert api.get("/totp/metrics").status_code == 401


@pytest.mark.redis
def test_with_redis_configured_the_ledger_lives_there(make_api: MakeApi, redis_client: Any) -> None:
    provider = f"rtest{secrets.token_hex(3)}"
    api = make_api(
        BOTYARD_WORKER_TOKEN="totp-api-worker-token",
        REDIS_URL="redis://127.0.0.1:6379/0",
        **{f"{provider.upper()}_TOTP_SECRET": SECRET},
    )
    try:
        store = api.app.state.runtime.store  # type: ignore[attr-defined]
        job, _ = _running(store, provider=provider)
        answer = api.post(f"/totp/{provider}/code", headers=job).json()
        stored = redis_client.hgetall(f"botyard:totp:account:{provider}")
        assert stored["last_step"] == str(answer["time_step"]) and stored["issued"] == "1"
    finally:
        redis_client.delete(f"botyard:totp:account:{provider}")
        redis_client.srem("botyard:totp:accounts", provider)


def test_seed_001s_valkey_variables_make_the_url() -> None:
    settings = RedisSettings(VALKEY_HOST="valkey", VALKEY_PASSWORD="p@ss/word")  # type: ignore[call-arg]
    assert settings.url == "redis://:p%40ss%2Fword@valkey:6379/0"
    explicit = RedisSettings(REDIS_URL="redis://r:6380/1", VALKEY_HOST="v")  # type: ignore[call-arg]
    assert explicit.url == "redis://r:6380/1"


def test_only_a_running_attempt_s_own_credential_gets_codes(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url, BOTYARD_WORKER_TOKEN=WORKER_TOKEN, DEMO_TOTP_SECRET=SECRET)
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    running, job_id = _running(store)
    assert api.post("/totp/demo/code", headers=running).status_code == 200

    def refused(headers: dict[str, str]) -> None:
        for path in ("/totp/demo/code", "/totp/demo/consumed"):
            answer = api.post(path, json={"success": True} if "consumed" in path else None,
                              headers=headers)  # fmt: skip
            assert answer.status_code == 401, (path, answer.text)
            assert_error_shape(answer.json())

    elsewhere, _ = _running(store, worker_token="another-installation-token")
    refused(elsewhere)
    refused({"Authorization": "Bearer not-a-credential"})
    later = attempt_credentials.mint(WORKER_TOKEN, job_id, 2)  # an attempt not started
    refused({"Authorization": f"Bearer {later}"})
    huge = attempt_credentials.mint(WORKER_TOKEN, 2**64, 1)
    refused({"Authorization": f"Bearer {huge}"})
    job = store.get_job(job_id, detail=False)
    store.finish(
        [Completion(job_id, 1, Outcome.SUCCEEDED, job.max_attempts, job.idempotent, result={})]
    )
    refused(running)  # its attempt is over


def test_an_attempt_gets_codes_for_its_own_job_s_provider_only(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(
        store_url,
        BOTYARD_WORKER_TOKEN=WORKER_TOKEN,
        DEMO_TOTP_SECRET=SECRET,
        BANK_TOTP_SECRET=pyotp.random_base32(),
    )
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    demo_job, demo_id = _running(store)
    _bank_job, bank_id = _running(store, provider="bank")
    # Before: any running attempt's credential had codes of every provider and account.
    for path, body in (
        ("/totp/bank/code", None),
        ("/totp/bank/code", {"account": "treasury"}),
        ("/totp/bank/consumed", {"success": True}),
        ("/totp/demo/code", {"job_id": bank_id}),  # another job's id in the body
    ):
        answer = api.post(path, json=body, headers=demo_job)
        assert answer.status_code == 403, (path, body, answer.text)
        assert_error_shape(answer.json())
    figures = api.get("/totp/metrics", headers=token(api, "admin", "admin-password")).json()
    assert all(f["provider"] != "bank" or f["issued"] == 0 for f in figures)
    mine = api.post("/totp/demo/code", json={"job_id": demo_id}, headers=demo_job)
    assert mine.status_code == 200
