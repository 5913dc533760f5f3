"""``/totp``: codes for workers holding the worker token, figures for viewers, no secrets."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pyotp
import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text
from tests.api_helpers import MakeApi, assert_error_shape, token

from botyard.settings import RedisSettings

SECRET = pyotp.random_base32()
WORKER = {"Authorization": "Bearer totp-api-worker-token"}


def test_codes_consumption_and_figures(make_api: MakeApi, store_url: str) -> None:
    api = make_api(
        store_url,
        BOTYARD_WORKER_TOKEN="totp-api-worker-token",
        DEMO_TOTP_SECRET=SECRET,
        DEMO_TOTP_INTERVAL="2",
        TOTP_MIN_VALIDITY="0.5",
    )
    assert api.post("/totp/demo/code").status_code == 401
    admin = token(api, "admin", "admin-password")
    assert api.post("/totp/demo/code", headers=admin).status_code == 401  # a person's JWT is not it

    first = api.post("/totp/demo/code", json={"job_id": 1}, headers=WORKER).json()
    second = api.post("/totp/demo/code", json={"job_id": 2}, headers=WORKER).json()
    assert second["time_step"] > first["time_step"]  # the second waited for the next step
    for answer in (first, second):
        assert answer["code"] == pyotp.TOTP(SECRET, interval=2).at(answer["time_step"] * 2)
        assert 0.5 <= answer["valid_for"] <= 2

    for success in (True, False):
        ok = api.post("/totp/demo/consumed", json={"success": success}, headers=WORKER)
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

    missing = api.post("/totp/osn/code", headers=WORKER)
    assert missing.status_code == 404 and "OSN_TOTP_SECRET" in missing.json()["detail"]
    assert_error_shape(missing.json())
    assert api.post("/totp/Bad-Name/code", headers=WORKER).status_code == 422
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
        answer = api.post(f"/totp/{provider}/code", headers=WORKER).json()
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
