"""Jobs recorded by workers outside the pull/agent machinery (standby tasks): the worker token."""

from __future__ import annotations

from tests.api_helpers import MakeApi, assert_error_shape, token

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
