"""POPIA end to end: jobs run by a real worker, then a subject's access and deletion requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api_helpers import MakeApi, assert_error_shape, token

from botyard.bus import open_bus
from botyard.jobs import JobStatus
from botyard.orchestrator.auth import Role, hash_password
from botyard.store import SqlStore
from botyard.worker import PullWorker, WorkerConfig

AUTOMATIONS = str(Path(__file__).resolve().parent.parent / "automations_for_tests.py")
SUBJECT = "Thandiwe Nkosi-Mokoena"
OTHER = "Pieter van der Merwe"
CONTACT = "dpo@example.co.za"


@pytest.fixture
def api(make_api: MakeApi, store_url: str) -> TestClient:
    return make_api(
        store_url,
        BOTYARD_AUTOMATIONS=AUTOMATIONS,
        DATA_PROTECTION_CONTACT=CONTACT,
        DATA_REQUEST_RATE_LIMIT="50/hour",
    )


@pytest.fixture
def worker(api: TestClient, store_url: str, tmp_path: Path) -> Iterator[PullWorker]:
    """A pull worker on the app's store, writing evidence into the app's data directory."""
    store: SqlStore = api.app.state.runtime.store  # type: ignore[attr-defined]
    bus = open_bus(store_url)
    running = PullWorker(
        store,
        bus,
        WorkerConfig(
            automations=["tests.ok"],
            modules=[AUTOMATIONS],
            worker_id="privacy-worker",
            concurrency=2,
            poll_interval=0.2,
            data_dir=tmp_path,
        ),
    )
    thread = threading.Thread(target=running.run, kwargs={"install_signals": False})
    thread.start()
    try:
        yield running
    finally:
        running.stop(0)
        thread.join(30)
        bus.close()


def _run_jobs(
    api: TestClient, headers: dict[str, str], names: list[str], wait_until: Any
) -> list[int]:
    ids = [
        api.post(
            "/jobs", json={"automation": "tests.ok", "payload": {"name": n}}, headers=headers
        ).json()["id"]
        for n in names
    ]

    def all_done() -> bool:
        return all(
            api.get(f"/jobs/{i}", headers=headers).json()["status"] == "succeeded" for i in ids
        )

    wait_until(all_done, timeout=30)
    return ids


def _file(api: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post("/privacy/data-request", json=body)
    assert answer.status_code == 202, answer.text
    receipt: dict[str, Any] = answer.json()
    return receipt


def test_notice_names_the_contact_and_the_retention(api: TestClient) -> None:
    body = api.get("/privacy/notice").json()  # no token needed
    assert body["data_protection_contact"] == CONTACT
    assert body["retention"]["evidence_days"] == 30
    assert "POPIA" in body["law"]
    assert body["how_to_make_a_request"]["path"] == "/privacy/data-request"


def test_access_and_deletion_end_to_end(
    api: TestClient, worker: PullWorker, tmp_path: Path, wait_until: Any
) -> None:
    admin = token(api, "admin", "admin-password")
    subject_jobs = _run_jobs(api, admin, [SUBJECT, SUBJECT.upper()], wait_until)
    (other_job,) = _run_jobs(api, admin, [OTHER], wait_until)

    # Anyone files a request; the answer is a reference and nothing personal.
    receipt = _file(
        api, {"request_type": "access", "subject_identifier": SUBJECT, "contact": "me@x.example"}
    )
    assert receipt["reference"].startswith("DSR-") and receipt["status"] == "received"
    assert SUBJECT not in json.dumps(receipt) and "me@x.example" not in json.dumps(receipt)

    # Only admins see requests.
    users = api.app.state.runtime.store.users  # type: ignore[attr-defined]
    users.create("olga", hash_password("operator-password"), Role.OPERATOR.value)
    operator = token(api, "olga", "operator-password")
    assert api.get("/privacy/requests").status_code == 401
    denied = api.get("/privacy/requests", headers=operator)
    assert denied.status_code == 403
    assert_error_shape(denied.json())
    listed = api.get("/privacy/requests", headers=admin).json()
    assert listed["total"] == 1 and listed["items"][0]["subject_identifier"] == SUBJECT

    reference = receipt["reference"]
    view = api.get(f"/privacy/requests/{reference}", headers=admin).json()
    # Two jobs (matched whatever the case), two log lines and a print each, one file each.
    assert view["matches"] == {"jobs": 2, "log_lines": 6, "evidence": 2}

    fulfilled = api.post(f"/privacy/requests/{reference}/fulfil", json={}, headers=admin).json()
    assert fulfilled["request"]["status"] == "fulfilled"
    export = fulfilled["export"]
    assert [j["id"] for j in export["jobs"]] == subject_jobs
    assert export["jobs"][0]["payload"] == {"name": SUBJECT, "lines": 2}
    assert {e["name"] for e in export["evidence"]} == {"greeting.txt"}
    assert all(SUBJECT.casefold() in line["message"].casefold() for line in export["log_lines"])
    again = api.post(f"/privacy/requests/{reference}/fulfil", json={}, headers=admin)
    assert again.status_code == 409  # closed already

    # A deletion waits for the subject's queued jobs; nothing changes until they are done.
    erase = _file(
        api, {"request_type": "deletion", "subject_identifier": SUBJECT, "contact": CONTACT}
    )["reference"]
    worker.stop(0)
    queued = api.post(
        "/jobs", json={"automation": "tests.ok", "payload": {"name": SUBJECT}}, headers=admin
    ).json()["id"]
    refused = api.post(f"/privacy/requests/{erase}/fulfil", json={}, headers=admin)
    assert refused.status_code == 409 and str(queued) in refused.json()["detail"]
    assert api.get(f"/jobs/{subject_jobs[0]}", headers=admin).json()["payload"]["name"] == SUBJECT
    assert api.post(f"/jobs/{queued}/cancel", headers=admin).status_code == 200

    files = [tmp_path / "evidence" / str(i) for i in subject_jobs]
    assert all(any(f.rglob("greeting.txt")) for f in files)
    done = api.post(
        f"/privacy/requests/{erase}/fulfil", json={"note": "erased on request"}, headers=admin
    ).json()["request"]
    assert done["status"] == "fulfilled" and done["note"] == "erased on request"
    assert done["outcome"] == {
        "jobs_redacted": 3,  # the two that ran and the cancelled one
        "log_lines_redacted": 6,
        "evidence_deleted": 2,
        "evidence_files_deleted": 2,
    }
    assert not any(any(f.rglob("greeting.txt")) for f in files)
    job = api.get(f"/jobs/{subject_jobs[0]}", headers=admin).json()
    assert job["payload"] == {"name": "[redacted]", "lines": "[redacted]"}
    assert job["result"] == {"greeting": "[redacted]", "attempt": "[redacted]"}
    assert job["status"] == JobStatus.SUCCEEDED.value  # the job's history stays
    logs = api.get(f"/jobs/{subject_jobs[0]}/logs", headers=admin).json()
    assert logs["lines"] and all(
        SUBJECT.casefold() not in x["message"].casefold() for x in logs["lines"]
    )
    assert (
        api.get(f"/jobs/{subject_jobs[0]}/screenshots", headers=admin).json()["screenshots"] == []
    )

    # The other person's job is untouched, and nothing refers to the subject any more.
    other = api.get(f"/jobs/{other_job}", headers=admin).json()
    assert other["payload"] == {"name": OTHER, "lines": 2}
    assert api.get(f"/jobs/{other_job}/screenshots", headers=admin).json()["screenshots"]
    export = api.get(f"/privacy/requests/{reference}/export", headers=admin).json()
    assert export["jobs"] == [] and export["log_lines"] == [] and export["evidence"] == []

    # Every step is audited, by reference, without the subject's identifier.
    events = api.get("/audit", params={"limit": 500}, headers=admin).json()["items"]
    privacy = [(e["action"], e["target"]) for e in events if e["action"].startswith("privacy")]
    assert ("privacy_request_received", f"privacy:{reference}") in privacy
    assert ("privacy_request_viewed", f"privacy:{reference}") in privacy
    assert ("privacy_request_fulfilled", f"privacy:{reference}") in privacy
    assert ("privacy_export", f"privacy:{reference}") in privacy
    assert ("privacy_request_fulfilled", f"privacy:{erase}") in privacy
    assert ("privacy_requests_listed", "privacy") in privacy
    assert SUBJECT.casefold() not in json.dumps(events).casefold()


def test_correction_and_rejection_close_with_a_note(api: TestClient) -> None:
    admin = token(api, "admin", "admin-password")
    fix = _file(
        api,
        {
            "request_type": "correction",
            "subject_identifier": "ACC-55121",
            "contact": "+27 21 555 0100",
            "details": "my surname is spelt Nkosi, not Nkozi",
        },
    )["reference"]
    closed = api.post(
        f"/privacy/requests/{fix}/fulfil", json={"note": "corrected in the CRM"}, headers=admin
    ).json()
    assert closed["request"]["status"] == "fulfilled" and closed["export"] is None
    no = _file(
        api, {"request_type": "deletion", "subject_identifier": "ACC-1", "contact": "x@y.example"}
    )["reference"]
    assert api.post(f"/privacy/requests/{no}/reject", json={}, headers=admin).status_code == 422
    rejected = api.post(
        f"/privacy/requests/{no}/reject", json={"note": "not our customer"}, headers=admin
    ).json()
    assert rejected["status"] == "rejected" and rejected["note"] == "not our customer"
    only_open = api.get("/privacy/requests", params={"status": "received"}, headers=admin).json()
    assert only_open["total"] == 0
    assert api.get("/privacy/requests/DSR-NOPE", headers=admin).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"request_type": "erase_everything", "subject_identifier": "ACC-1", "contact": "a@b.c"},
        {"request_type": "access", "subject_identifier": "x", "contact": "a@b.c"},
        {"request_type": "access", "subject_identifier": "ACC-1"},
        {"request_type": "access", "subject_identifier": "A" * 201, "contact": "a@b.c"},
        {"request_type": "access", "subject_identifier": "ACC-1", "contact": "a@b.c", "x": 1},
    ],
)
def test_bad_requests_are_422_and_record_nothing(api: TestClient, body: dict[str, Any]) -> None:
    answer = api.post("/privacy/data-request", json=body)
    assert answer.status_code == 422
    assert_error_shape(answer.json())
    admin = token(api, "admin", "admin-password")
    assert api.get("/privacy/requests", headers=admin).json()["total"] == 0


def test_data_requests_are_rate_limited_per_client(make_api: MakeApi) -> None:
    api = make_api(DATA_REQUEST_RATE_LIMIT="2/hour")
    body = {"request_type": "access", "subject_identifier": "ACC-1", "contact": "a@b.c"}
    statuses = [api.post("/privacy/data-request", json=body).status_code for _ in range(4)]
    assert statuses == [202, 202, 429, 429]
    limited = api.post("/privacy/data-request", json=body)
    assert int(limited.headers["Retry-After"]) > 0
    other = TestClient(api.app, client=("10.9.9.9", 40000))
    assert other.post("/privacy/data-request", json=body).status_code == 202
    admin = token(api, "admin", "admin-password")
    assert api.get("/privacy/requests", headers=admin).json()["total"] == 3
