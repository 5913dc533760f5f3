"""Push dispatch against a real agent service on a real store: full agents, forgotten jobs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import update

from botyard.automations.registry import Registry
from botyard.bus import Bus
from botyard.jobs import JobStatus
from botyard.orchestrator.dispatch import AgentDispatcher
from botyard.orchestrator.service import JobService
from botyard.settings import AgentSettings, Settings
from botyard.store import NewJob, SqlStore
from botyard.store.tables import jobs, workers
from botyard.worker import WorkerConfig
from botyard.worker.agent import AgentWorker
from botyard.worker.agent_app import create_agent_app

AUTOMATIONS = str(Path(__file__).resolve().parent.parent / "automations_for_tests.py")
TOKEN = "push-dispatch-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def agent(store: SqlStore, bus: Bus, tmp_path: Path) -> Iterator[AgentWorker]:
    """An agent with one slot, its HTTP service on a free port, registered in the store."""
    port = _free_port()
    worker = AgentWorker(
        store,
        bus,
        WorkerConfig(
            automations=["tests.slow", "tests.ok"],
            modules=[AUTOMATIONS],
            worker_id="agent-int",
            concurrency=1,
            lease_ttl=10,
            heartbeat_interval=0.5,
            data_dir=tmp_path,
            endpoint=f"http://127.0.0.1:{port}",
        ),
    )
    ags = AgentSettings(BOTYARD_WORKER_TOKEN=TOKEN, AUTHORIZED_WORKER_IPS=["127.0.0.1"])  # type: ignore[call-arg]
    server = uvicorn.Server(
        uvicorn.Config(
            create_agent_app(worker, ags, development=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            proxy_headers=False,
        )
    )
    threads = [
        threading.Thread(target=worker.run, kwargs={"install_signals": False}),
        threading.Thread(target=server.run),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while not server.started or store.workers.get("agent-int") is None:
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.05)
    try:
        yield worker
    finally:
        server.should_exit = True
        worker.stop(0)
        for thread in threads:
            thread.join(30)


@pytest.fixture
def dispatcher(store: SqlStore, bus: Bus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("BOTYARD_WORKER_TOKEN", TOKEN)
    pusher = AgentDispatcher(JobService(store, bus, Registry()), Settings())
    try:
        yield pusher
    finally:
        pusher.http.close()


def test_a_full_agent_answers_429_and_the_job_goes_back_unspent(
    store: SqlStore, agent: AgentWorker, dispatcher: AgentDispatcher, wait_until: Any
) -> None:
    first, _ = store.submit(NewJob(automation="tests.slow", payload={"seconds": 3}))
    second, _ = store.submit(NewJob(automation="tests.slow", payload={"seconds": 3}))
    pushed = dispatcher.dispatch()
    assert [p.job_id for p in pushed] == [first.id]
    assert dispatcher.dispatch() == []  # the store shows the one slot taken: nothing claimed

    # The agent claims more room than it has: it refuses, and the job is released unspent.
    with store.engine.begin() as conn:
        conn.execute(update(workers).where(workers.c.id == "agent-int").values(capacity=2))
    dispatcher.refresh()
    assert dispatcher.dispatch() == []
    released = store.get_job(second.id)
    assert released.status is JobStatus.QUEUED
    assert released.attempt - released.attempt_base == 0  # no attempt spent
    assert [a.outcome for a in released.attempts] == ["released"]
    assert store.get_job(first.id).worker_id == "agent-int"
    wait_until(lambda: store.get_job(first.id).status is JobStatus.SUCCEEDED, timeout=20)


def test_a_job_the_agent_does_not_know_is_recovered(
    store: SqlStore, agent: AgentWorker, dispatcher: AgentDispatcher
) -> None:
    job, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "lost"}))
    # Claimed in the agent's name, but the push never arrived (the orchestrator died meanwhile).
    claimed = store.claim(
        "agent-int", queues=["default"], automations=["tests.ok"], limit=1, lease_ttl=60
    )
    assert [c.id for c in claimed] == [job.id]
    assert dispatcher.poll_agents()["forgotten"] == []  # too young: it may be on its way
    report = dispatcher.poll_agents(grace=timedelta(0))
    assert report == {"forgotten": [job.id], "unreachable": []}
    recovered = store.get_job(job.id)
    assert recovered.status is JobStatus.QUEUED
    assert [a.outcome for a in recovered.attempts] == ["lease_expired"]


def test_an_unreachable_agent_is_left_to_its_lease(
    store: SqlStore, agent: AgentWorker, dispatcher: AgentDispatcher
) -> None:
    store.workers.set_endpoint("agent-int", f"http://127.0.0.1:{_free_port()}")
    job, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "x"}))
    assert dispatcher.dispatch() == []  # nothing pushed, and the job is back in the queue
    assert store.get_job(job.id).status is JobStatus.QUEUED
    store.claim("agent-int", queues=["default"], automations=["tests.ok"], limit=1, lease_ttl=60)
    report = dispatcher.poll_agents(grace=timedelta(0))
    assert report == {"forgotten": [], "unreachable": ["agent-int"]}
    assert store.get_job(job.id).status is JobStatus.RUNNING  # its lease decides, not a guess


def test_a_push_without_an_answer_is_not_released(
    store: SqlStore,
    agent: AgentWorker,
    dispatcher: AgentDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    wait_until: Any,
) -> None:
    """The agent takes the job but answers too late: releasing it could run it twice."""
    accept = agent.accept

    def slow_accept(job_id: int, attempt: int) -> Any:
        state = accept(job_id, attempt)
        time.sleep(1.0)  # longer than the dispatcher waits
        return state

    monkeypatch.setattr(agent, "accept", slow_accept)
    dispatcher.http.timeout = httpx.Timeout(0.3)
    job, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "late"}))
    assert dispatcher.dispatch() == []  # no 202 seen
    held = store.get_job(job.id)  # not released: still the agent's (or done by it already)
    assert held.status in (JobStatus.RUNNING, JobStatus.SUCCEEDED)
    assert held.worker_id == "agent-int"
    wait_until(lambda: store.get_job(job.id).status is JobStatus.SUCCEEDED, timeout=20)
    ran = store.get_job(job.id).attempts
    assert [(a.worker_id, a.outcome) for a in ran] == [("agent-int", "succeeded")]  # once


def _requests_seen(httpserver: Any) -> list[tuple[str, str, dict[str, str], bytes]]:
    return [(r.method, r.full_path, dict(r.headers), r.get_data()) for r, _ in httpserver.log]


def test_a_rogue_endpoint_never_receives_the_worker_token(
    store: SqlStore, agent: AgentWorker, dispatcher: AgentDispatcher, httpserver: Any
) -> None:
    """Issue 13: ``POST /workers/agents`` with any URL made the orchestrator send it the token."""
    import re

    from botyard.orchestrator.dispatch import AgentUnreachable

    httpserver.expect_request("/status").respond_with_json({"worker_id": "agent-int"})
    httpserver.expect_request(re.compile(r"^/status/\d+$")).respond_with_json({"attempt": 1})
    httpserver.expect_request("/execute", method="POST").respond_with_json({}, status=202)
    rogue = httpserver.url_for("/").rstrip("/")
    with pytest.raises(AgentUnreachable, match="did not prove it is an agent"):
        dispatcher.register(rogue)  # it names a real agent's id, but cannot answer the challenge
    assert store.workers.get("agent-int").endpoint != rogue  # type: ignore[union-attr]

    # Even at an endpoint in the store (an agent's port taken over by another process), what
    # arrives is a signature of that one request, never the token.
    store.workers.set_endpoint("agent-int", rogue)
    dispatcher.refresh()
    job, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "rogue"}))
    assert [p.job_id for p in dispatcher.dispatch()] == [job.id]
    dispatcher.poll_agents(grace=timedelta(0))
    seen = _requests_seen(httpserver)
    assert {(method, path.split("?")[0]) for method, path, _, _ in seen} == {
        ("GET", "/status"),
        ("POST", "/execute"),
        ("GET", f"/status/{job.id}"),
    }
    for _method, _path, headers, body in seen:
        assert TOKEN not in repr(headers) and TOKEN.encode() not in body
        assert headers["Authorization"].startswith("Botyard-Signature ")


def test_a_real_agent_proves_itself_and_one_of_another_installation_does_not(
    store: SqlStore,
    agent: AgentWorker,
    dispatcher: AgentDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    wait_until: Any,
) -> None:
    from botyard.orchestrator.dispatch import AgentUnreachable

    endpoint = agent.config.endpoint
    assert endpoint is not None
    assert dispatcher.register(f"{endpoint}/execute").id == "agent-int"
    job, _ = store.submit(NewJob(automation="tests.ok", payload={"name": "signed"}))
    assert [p.job_id for p in dispatcher.dispatch()] == [job.id]
    wait_until(lambda: store.get_job(job.id).status is JobStatus.SUCCEEDED, timeout=20)

    monkeypatch.setenv("BOTYARD_WORKER_TOKEN", "another-installation")
    stranger = AgentDispatcher(JobService(store, dispatcher.bus, Registry()), Settings())
    try:
        with pytest.raises(AgentUnreachable, match="HTTP 401"):
            stranger.register(endpoint)  # the agent refuses its signature
    finally:
        stranger.http.close()


def test_the_agent_checks_signatures_without_reading_big_bodies(agent: AgentWorker) -> None:
    from botyard.agent_signature import audience, sign

    url = agent.config.endpoint
    assert url is not None
    me = audience(url)
    status = {"Authorization": sign(TOKEN, "GET", "/status", b"", to=me)}
    assert httpx.get(f"{url}/status", headers=status).status_code == 200
    assert httpx.get(f"{url}/status", headers=status).status_code == 401  # a copy, sent again
    big = b"x" * (65 * 1024)
    signed = {"Authorization": sign(TOKEN, "POST", "/execute", big, to=me)}
    assert httpx.post(f"{url}/execute", content=big, headers=signed).status_code == 413
    body = b'{"job_id": 1, "attempt": 1}'

    def chunks() -> Iterator[bytes]:
        yield body

    signed = {"Authorization": sign(TOKEN, "POST", "/execute", body, to=me)}
    assert httpx.post(f"{url}/execute", content=chunks(), headers=signed).status_code == 413


def test_a_rogue_endpoint_cannot_relay_the_challenge_to_a_real_agent(
    store: SqlStore, agent: AgentWorker, dispatcher: AgentDispatcher, httpserver: Any
) -> None:
    """Before: the rogue passed the agent's signed ``GET /status`` on, and its proof with it."""
    from werkzeug import Request as WsgiRequest
    from werkzeug import Response as WsgiResponse

    from botyard.agent_signature import CHALLENGE_HEADER
    from botyard.orchestrator.dispatch import AgentUnreachable

    real = agent.config.endpoint
    assert real is not None

    def relay(request: WsgiRequest) -> WsgiResponse:
        keep = ("Authorization", CHALLENGE_HEADER)
        headers = {name: request.headers[name] for name in keep if name in request.headers}
        answer = httpx.get(f"{real}/status", headers=headers)
        return WsgiResponse(answer.content, answer.status_code, content_type="application/json")

    httpserver.expect_request("/status").respond_with_handler(relay)
    rogue = httpserver.url_for("/").rstrip("/")
    with pytest.raises(AgentUnreachable, match="HTTP 401"):
        dispatcher.register(rogue)
    assert store.workers.get("agent-int").endpoint == real  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "header",
    [
        "Botyard-Signature t=" + "9" * 5000 + ",n=" + "a" * 22 + ",s=" + "0" * 64,
        "Botyard-Signature t=1,n=1,s=1,t=2",
        "Botyard-Signature " + "=" * 3000,
    ],
)
def test_a_malformed_signature_is_a_4xx_at_the_agent(agent: AgentWorker, header: str) -> None:
    answer = httpx.get(f"{agent.config.endpoint}/status", headers={"Authorization": header})
    assert answer.status_code == 401, answer.text  # before: 500 for the 5,000-digit stamp


def test_an_agents_fence_counts_from_its_lease_not_from_the_push(
    store: SqlStore, agent: AgentWorker
) -> None:
    """A push that reached the agent 2 s after the orchestrator's claim (more than the fence
    margin, 1 s at lease 10 s): the job's tree is still killed before its lease can expire."""
    store.submit(NewJob("tests.slow", {"seconds": 0.5}))
    [job] = store.claim(
        "agent-int", queues=["default"], automations=["tests.slow"], limit=1, lease_ttl=10
    )
    with store.engine.begin() as conn:  # claimed 2 s ago: 8 s of the lease are left
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id)
            .values(lease_expires_at=datetime.now(UTC) + timedelta(seconds=8))
        )
    agent.accept(job.id, job.attempt)
    kill_at = agent.fences.kill_at(job.id, job.attempt)
    left = store.get_job(job.id, detail=False).lease_expires_at
    assert kill_at is not None and left is not None
    # Before: the fence came 9 s after the push, a second after the lease had expired.
    assert kill_at - time.monotonic() < (left - datetime.now(UTC)).total_seconds()
