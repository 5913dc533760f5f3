"""``/metrics`` for Prometheus, read back with prometheus-client's own parsers, on both stores."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from sqlalchemy import update
from tests.api_helpers import MakeApi, token

from botyard.jobs import Outcome
from botyard.store import SqlStore
from botyard.store.records import Completion
from botyard.store.tables import attempts

# What Prometheus 3 sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str, *, openmetrics: bool = False) -> Samples:
    families = parse_openmetrics(text) if openmetrics else parse_text(text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def _populate(api: TestClient, store: SqlStore) -> list[int]:
    """Five jobs: 2 succeeded (0.3 s and 4 s), 1 failed, 1 recovered after its worker vanished,
    1 queued in another queue."""
    admin = token(api, "admin", "admin-password")

    def submit(payload: dict[str, Any], **extra: Any) -> int:
        body = {"automation": "accept.quick", "payload": payload, **extra}
        job_id: int = api.post("/jobs", json=body, headers=admin).json()["id"]
        return job_id

    ids = [submit({"n": n}) for n in range(4)]
    submit({"n": 9}, queue="reports")
    claimed = store.claim(
        "w-1", queues=["default"], automations=["accept.quick"], limit=4, lease_ttl=30
    )
    assert [c.id for c in claimed] == ids
    durations = {ids[0]: 0.3, ids[1]: 4.0, ids[2]: 0.05}
    outcomes = {
        ids[0]: Outcome.SUCCEEDED,
        ids[1]: Outcome.SUCCEEDED,
        ids[2]: Outcome.BUSINESS_ERROR,
    }
    store.finish(
        [
            Completion(c.id, c.attempt, outcomes[c.id], c.max_attempts, c.idempotent)
            for c in claimed
            if c.id in outcomes
        ]
    )
    with store.engine.begin() as conn:
        for job_id, seconds in durations.items():
            row = (
                conn.execute(attempts.select().where(attempts.c.job_id == job_id)).mappings().one()
            )
            conn.execute(
                update(attempts)
                .where(attempts.c.job_id == job_id)
                .values(
                    finished_at=row["started_at"] + timedelta(seconds=seconds),
                    ready_at=row["started_at"] - timedelta(milliseconds=3),
                )
            )
        # The worker of the fourth job vanished: its lease runs out and the sweep recovers it.
        started = (
            conn.execute(attempts.select().where(attempts.c.job_id == ids[3])).mappings().one()
        )["started_at"]
        conn.execute(
            update(attempts)
            .where(attempts.c.job_id == ids[3])
            .values(ready_at=started - timedelta(seconds=2))
        )
    store.release_orphans("w-1")
    return ids


def test_prometheus_exposition_parses_and_counts_the_store(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url)
    store: SqlStore = api.app.state.runtime.store  # type: ignore[attr-defined]
    _populate(api, store)

    answer = api.get("/metrics", params={"format": "prometheus"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(answer.text)

    assert value(found, "botyard_info", version=_version()) == 1
    assert value(found, "botyard_store_up") == 1
    assert value(found, "botyard_scheduler_running") == 1
    assert value(found, "botyard_jobs", status="succeeded", automation="accept.quick") == 2
    assert value(found, "botyard_jobs", status="failed", automation="accept.quick") == 1
    assert value(found, "botyard_jobs", status="queued", automation="accept.quick") == 2
    assert value(found, "botyard_jobs", status="running", automation="") == 0
    assert value(found, "botyard_queue_depth", queue="default") == 1
    assert value(found, "botyard_queue_depth", queue="reports") == 1
    assert value(found, "botyard_leases_recovered_total") == 1
    assert (
        value(found, "botyard_attempts_total", automation="accept.quick", outcome="succeeded") == 2
    )
    assert value(found, "botyard_workers_online") == 0
    assert value(found, "botyard_health", botyard_health="red") == 1  # no worker online

    # Attempt durations: 0.3 s and 4 s succeeded, 0.05 s failed (business error).
    ok = {"automation": "accept.quick", "outcome": "succeeded"}
    assert value(found, "botyard_attempt_duration_seconds_bucket", le="0.1", **ok) == 0
    assert value(found, "botyard_attempt_duration_seconds_bucket", le="0.5", **ok) == 1
    assert value(found, "botyard_attempt_duration_seconds_bucket", le="5.0", **ok) == 2
    assert value(found, "botyard_attempt_duration_seconds_bucket", le="+Inf", **ok) == 2
    assert value(found, "botyard_attempt_duration_seconds_count", **ok) == 2
    assert abs(value(found, "botyard_attempt_duration_seconds_sum", **ok) - 4.3) < 0.01
    bad = {"automation": "accept.quick", "outcome": "business_error"}
    assert value(found, "botyard_attempt_duration_seconds_bucket", le="0.1", **bad) == 1

    # Dispatch latency: three attempts 3 ms after they became runnable, one after 2 s.
    queue = {"queue": "default"}
    assert value(found, "botyard_dispatch_latency_seconds_bucket", le="0.001", **queue) == 0
    assert value(found, "botyard_dispatch_latency_seconds_bucket", le="0.005", **queue) == 3
    assert value(found, "botyard_dispatch_latency_seconds_bucket", le="2.5", **queue) == 4
    assert value(found, "botyard_dispatch_latency_seconds_count", **queue) == 4

    run = store.maintenance.started("collect_metrics", "replica-a")
    store.maintenance.finished(run, "ok")
    again = samples(api.get("/metrics", params={"format": "prometheus"}).text)
    counted = value(again, "botyard_maintenance_runs_total", job="collect_metrics", outcome="ok")
    assert counted == 1


def test_content_negotiation(make_api: MakeApi) -> None:
    api = make_api()
    assert set(api.get("/metrics").json()) == {"metrics", "averages", "current"}  # curl: */*
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert "current" in api.get("/metrics", headers={"Accept": browser}).json()
    assert "current" in api.get("/metrics", params={"format": "json"}).json()

    scraped = api.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    assert scraped.text.endswith("# EOF\n")
    assert value(samples(scraped.text, openmetrics=True), "botyard_store_up") == 1

    plain = api.get("/metrics", headers={"Accept": "text/plain"})
    assert plain.headers["content-type"].startswith("text/plain")
    assert value(samples(plain.text), "botyard_store_up") == 1
    openmetrics = api.get("/metrics", params={"format": "openmetrics"})
    assert value(samples(openmetrics.text, openmetrics=True), "botyard_store_up") == 1
    assert api.get("/metrics", params={"format": "xml"}).status_code == 422


def test_every_replica_reports_the_same(make_api: MakeApi, store_url: str) -> None:
    first = make_api(store_url)
    second = make_api(store_url)
    _populate(first, first.app.state.runtime.store)  # type: ignore[attr-defined]
    one = samples(first.get("/metrics", params={"format": "prometheus"}).text)
    two = samples(second.get("/metrics", params={"format": "prometheus"}).text)
    assert one == two


def _version() -> str:
    from botyard.version import __version__

    return __version__
