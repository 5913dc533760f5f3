"""A job's process holds a credential of its own attempt, never the worker's secrets.

The worker token can close any job and the database URL reaches every job: neither is in a
job's environment. ``ctx.totp`` (and a script, as ``BOTYARD_JOB_TOKEN``) shows the
orchestrator the attempt's credential, which the worker derives from its token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from botyard import attempt_credentials
from botyard.attempt_credentials import AttemptCredential
from botyard.bus import Bus
from botyard.jobs import JobStatus
from botyard.store import JobRecord, NewJob, SqlStore
from botyard.worker import PullWorker, WorkerConfig

AUTOMATIONS = str(Path(__file__).with_name("credential_automations.py"))
SCRIPT = f"creds.script={Path(__file__).with_name('script_environment.py')}"
TOKEN = "worker-token-of-the-credential-tests"
WORKER_SECRETS = {
    "BOTYARD_WORKER_TOKEN": TOKEN,
    "DATABASE_URL": "postgresql://botyard:db-password-1234@db.invalid/botyard",
    "JWT_SECRET": "jwt-secret-of-the-credential-tests",
    "ADMIN_PASSWORD": "admin-password-1234",
    "TASK_AUTH_TOKEN": "task-token-1234",
    "REDIS_URL": "redis://:redis-password-1234@redis.invalid:6379/0",
    "VALKEY_PASSWORD": "valkey-password-1234",
    "PGPASSWORD": "libpq-password-1234",  # libpq's own: the store's connection
    "PGHOST": "db.invalid",
}
StartWorker = Callable[..., PullWorker]
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # store-independent


@pytest.fixture
def start_worker(
    store: SqlStore, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StartWorker]:
    """A worker whose environment holds every secret of Botyard's own (its children's start
    from it), with or without a worker token in its configuration."""
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ACCEPT_PORTAL_PASSWORD", "portal-password-1234")  # the job's to use
    started: list[tuple[PullWorker, threading.Thread]] = []

    def start(token: str | None = TOKEN) -> PullWorker:
        config = WorkerConfig(
            automations=["creds.environment", "creds.totp", "creds.echo", "creds.script"],
            modules=[AUTOMATIONS],
            scripts=[SCRIPT],
            worker_id="creds",
            concurrency=1,
            poll_interval=0.2,
            shutdown_grace=0.0,
            data_dir=tmp_path / "data",
            worker_token=SecretStr(token) if token else None,
        )
        worker = PullWorker(store, bus, config)
        thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop(0)
        thread.join(10)


def _run(store: SqlStore, automation: str) -> JobRecord:
    job, _ = store.submit(NewJob(automation, {}, max_attempts=1))
    deadline = time.monotonic() + 30
    while (found := store.get_job(job.id)).status in (JobStatus.QUEUED, JobStatus.RUNNING):
        assert time.monotonic() < deadline, f"{automation} did not finish"
        time.sleep(0.05)
    return found


@pytest.mark.parametrize("automation", ["creds.environment", "creds.script"])
def test_a_jobs_environment_holds_none_of_the_workers_secrets(
    store: SqlStore, start_worker: StartWorker, automation: str
) -> None:
    start_worker()
    job = _run(store, automation)
    assert job.status is JobStatus.SUCCEEDED, job.error
    result: Any = job.result
    names = set(result if isinstance(result, list) else result["names"])
    # Before: every one of them was inherited from the worker.
    assert not names & WORKER_SECRETS.keys()
    assert {"ACCEPT_PORTAL_PASSWORD", "BOTYARD_JOB_OWNER"} <= names


def test_a_script_gets_its_attempts_credential(store: SqlStore, start_worker: StartWorker) -> None:
    start_worker()
    job = _run(store, "creds.script")
    assert isinstance(job.result, dict)
    credential = attempt_credentials.verify(TOKEN, job.result["credential"])
    assert credential == AttemptCredential(job.id, 1)


def test_totp_shows_the_orchestrator_the_attempts_credential(
    store: SqlStore,
    start_worker: StartWorker,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOTYARD_URL", httpserver.url_for("/"))
    code = {"code": "123456", "time_step": 1, "valid_for": 20.0, "provider": "demo"}
    httpserver.expect_request("/totp/demo/code", method="POST").respond_with_json(code)
    httpserver.expect_request("/totp/demo/consumed", method="POST").respond_with_json({})
    start_worker()

    job = _run(store, "creds.totp")

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert len(httpserver.log) == 2
    for request, _response in httpserver.log:
        scheme, _, bearer = request.headers["Authorization"].partition(" ")
        assert scheme == "Bearer" and bearer != TOKEN  # before: the worker token itself
        assert attempt_credentials.verify(TOKEN, bearer) == AttemptCredential(job.id, 1)


def test_totp_without_a_worker_token_says_what_to_set(
    store: SqlStore,
    start_worker: StartWorker,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOTYARD_URL", httpserver.url_for("/"))
    start_worker(token=None)

    job = _run(store, "creds.totp")

    assert job.status is JobStatus.FAILED and job.error is not None
    # Before: LocalProtocolError "Illegal header value b'Bearer '" from an HTTP call.
    assert job.error["type"] == "ConfigurationError"
    assert "BOTYARD_WORKER_TOKEN" in job.error["message"]
    assert httpserver.log == []


def test_the_workers_secrets_stay_masked_in_what_a_job_reports(
    store: SqlStore, start_worker: StartWorker
) -> None:
    start_worker()
    secrets = " ".join(WORKER_SECRETS[name] for name in ("BOTYARD_WORKER_TOKEN", "JWT_SECRET"))
    job, _ = store.submit(NewJob("creds.echo", {"text": secrets}, max_attempts=1))
    while store.get_job(job.id).status is not JobStatus.SUCCEEDED:
        time.sleep(0.05)
    # The job's process does not know them any more; its worker masks them all the same.
    shown = f"{store.get_job(job.id).result} {[line.message for line in store.logs(job.id)]}"
    assert TOKEN not in shown and WORKER_SECRETS["JWT_SECRET"] not in shown
    assert "*** ***" in shown
