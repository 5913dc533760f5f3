"""Jobs recorded by workers outside the pull/agent machinery (standby tasks): the worker token."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from tests.api_helpers import MakeApi, assert_error_shape, token
from tests.conftest import WaitUntil

from botyard.bus import Bus
from botyard.store import SqlStore
from botyard.store.tables import jobs
from botyard.worker import PullWorker, WorkerConfig

AUTOMATIONS = str(Path(__file__).parents[1] / "acceptance" / "acceptance_automations.py")

WORKER_TOKEN = "external-jobs-worker-token"
AUTH = {"Authorization": f"Bearer {WORKER_TOKEN}"}
START = {
    "automation": "standby.export",
    "payload": {"month": "2026-11"},
    "worker_id": "standby-1",
    "task_id": "t-1",
    "timeout": 60,
}


def test_the_worker_token_is_required(make_api: MakeApi) -> None:
    api = make_api(BOTYARD_WORKER_TOKEN=WORKER_TOKEN)
    admin = token(api, "admin", "admin-password")
    for headers in ({}, {"Authorization": "Bearer wrong"}, admin):
        answer = api.post("/jobs/external", json=START, headers=headers)
        assert answer.status_code == 401
        assert_error_shape(answer.json())
    unset = make_api(BOTYARD_WORKER_TOKEN=None)
    assert unset.post("/jobs/external", json=START, headers=AUTH).status_code == 401


def test_start_is_idempotent_and_only_its_worker_finishes_it(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url, BOTYARD_WORKER_TOKEN=WORKER_TOKEN)
    admin = token(api, "admin", "admin-password")
    started = api.post("/jobs/external", json=START, headers=AUTH)
    assert started.status_code == 201
    again = api.post("/jobs/external", json=START, headers=AUTH).json()
    assert again == started.json()
    job_id = again["job_id"]
    job = api.get(f"/jobs/{job_id}", headers=admin).json()
    assert (job["status"], job["queue"], job["max_attempts"]) == ("running", "external", 1)

    finish = {"attempt": 1, "worker_id": "standby-2", "outcome": "succeeded", "result": {"n": 1}}
    stranger = api.post(f"/jobs/{job_id}/external/finish", json=finish, headers=AUTH)
    assert stranger.status_code == 409
    finish["worker_id"] = "standby-1"
    done = api.post(f"/jobs/{job_id}/external/finish", json=finish, headers=AUTH)
    assert done.json() == {"job_id": job_id, "status": "succeeded"}
    assert api.get(f"/jobs/{job_id}", headers=admin).json()["result"] == {"n": 1}
    twice = api.post(f"/jobs/{job_id}/external/finish", json=finish, headers=AUTH)
    assert twice.status_code == 409
    restart = api.post("/jobs/external", json=START, headers=AUTH)
    assert restart.status_code == 409  # that task ended: a new task needs a new task_id

    for bad in ({**START, "automation": "Export"}, {**START, "worker_id": "../x"}, {"x": 1}):
        assert api.post("/jobs/external", json=bad, headers=AUTH).status_code == 422


def test_the_worker_token_cannot_close_a_pull_job_inside_its_side_effect(
    make_api: MakeApi,
    store_url: str,
    store: SqlStore,
    bus: Bus,
    tmp_path: Path,
    wait_until: WaitUntil,
) -> None:
    api = make_api(store_url, BOTYARD_WORKER_TOKEN=WORKER_TOKEN)
    admin = token(api, "admin", "admin-password")
    config = WorkerConfig(
        automations=["accept.cancel_circuit"],
        modules=[AUTOMATIONS],
        worker_id="w1",
        concurrency=1,
        lease_ttl=5.0,
        poll_interval=0.5,
        heartbeat_interval=0.5,
        shutdown_grace=0.5,
        data_dir=tmp_path / "data",
    )
    worker = PullWorker(store, bus, config)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        submitted = api.post(
            "/jobs",
            json={"automation": "accept.cancel_circuit", "payload": {"marker_dir": str(tmp_path)}},
            headers=admin,
        )
        job_id = submitted.json()["id"]
        wait_until((tmp_path / f"{job_id}-1.side_effect").exists, timeout=30)
        for outcome in ("error", "succeeded"):  # requeued (a second side effect), or settled
            forged = {"attempt": 1, "worker_id": "w1", "outcome": outcome, "result": {"x": 1}}
            answer = api.post(f"/jobs/{job_id}/external/finish", json=forged, headers=AUTH)
            assert answer.status_code == 403, answer.text
            assert_error_shape(answer.json())
        time.sleep(1.0)
        job = api.get(f"/jobs/{job_id}", headers=admin).json()
        assert (job["status"], job["attempt"], job["result"]) == ("running", 1, None)
        assert not (tmp_path / f"{job_id}-2.side_effect").exists()
        audit = api.get("/audit", params={"action": "job_finished_externally"}, headers=admin)
        assert audit.json()["total"] == 0
    finally:
        worker.stop(0)
        thread.join(30)


def test_an_external_attempt_closes_only_within_its_lease(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url, BOTYARD_WORKER_TOKEN=WORKER_TOKEN)
    job_id = api.post("/jobs/external", json=START, headers=AUTH).json()["job_id"]
    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # the standby outlived its lease; no sweep yet
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(lease_expires_at=past))
    finish = {"attempt": 1, "worker_id": "standby-1", "outcome": "succeeded", "result": {}}
    late = api.post(f"/jobs/{job_id}/external/finish", json=finish, headers=AUTH)
    assert late.status_code == 409
    assert store.get_job(job_id).status.value == "running"  # left to the lease recovery
    missing = api.post("/jobs/999999/external/finish", json=finish, headers=AUTH)
    assert missing.status_code == 404


def test_the_external_queue_is_kept_for_external_jobs(make_api: MakeApi, store_url: str) -> None:
    # The queue is what /external/finish goes by: a job submitted onto it could be closed
    # (requeued or settled) with the worker token while a pull worker runs it.
    api = make_api(store_url, BOTYARD_WORKER_TOKEN=WORKER_TOKEN)
    admin = token(api, "admin", "admin-password")
    body = {"automation": "accept.evidence", "payload": {"text": "x"}, "queue": "external"}
    answer = api.post("/jobs", json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert_error_shape(answer.json())
    assert [e["type"] for e in answer.json()["detail"]] == ["reserved_queue"]
    assert answer.json()["detail"][0]["loc"] == ["body", "queue"]
    assert api.get("/jobs", headers=admin).json()["total"] == 0
    assert api.post("/jobs", json={**body, "queue": "other"}, headers=admin).status_code == 201
