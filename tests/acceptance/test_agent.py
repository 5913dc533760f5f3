"""``botyard agent`` (seed 002's worker service) and push dispatch, as real processes."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from botyard.store.sql import SqlStore
from tests.acceptance.conftest import AUTOMATIONS, System, _free_port

TOKEN = "agent-shared-token-for-the-tests"


def start_agent(system: System, agent_id: str, *, ips: str = '["127.0.0.1"]', **env: str) -> str:
    """Start an agent on a free port; returns its URL once it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    system.env.update({"BOTYARD_WORKER_TOKEN": TOKEN, "AUTHORIZED_WORKER_IPS": ips, **env})
    system.botyard(
        "agent",
        "--automations",
        AUTOMATIONS,
        "--worker-id",
        agent_id,
        "--port",
        str(port),
        "--url",
        url,
        "--concurrency",
        "2",
    )
    local = httpx.HTTPTransport(local_address="127.0.0.2") if "127.0.0.2" in ips else None
    deadline = time.monotonic() + 60
    with httpx.Client(transport=local) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/health", timeout=1).status_code in (200, 403):
                    return url
            time.sleep(0.1)
    raise AssertionError("the agent did not start")


def agent_running_a_job(
    system: System, agent_id: str, *, seconds: float, markers: Path
) -> tuple[int, subprocess.Popen[bytes]]:
    """An agent and an orchestrator, and a sleepy job started on the agent; (job, agent)."""
    start_agent(system, agent_id)
    agent = system.procs[-1]
    system.server()
    markers.mkdir()
    job_id = system.submit("accept.sleepy", {"seconds": seconds, "marker_dir": str(markers)})
    system.wait_for(lambda: any(markers.glob(f"{job_id}-1.started")), 30, "the job to start")
    return job_id, agent


def test_the_allowlist_sees_the_real_source_address(system: System) -> None:
    url = start_agent(system, "agent-ip", ips='["127.0.0.2", "10.0.0.0/8", "fd00::/8"]')
    from_two = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    from_one = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.1"))
    with from_one, from_two:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        refused = from_one.get(f"{url}/status", headers=auth)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "Unauthorized IP address"
        spoofed = from_one.get(f"{url}/status", headers={**auth, "X-Forwarded-For": "127.0.0.2"})
        assert spoofed.status_code == 403  # the agent ignores forwarding headers
        # Loopback reaches /health, and only /health: the container's own health probe.
        assert from_one.get(f"{url}/health").status_code == 200

        health = from_two.get(f"{url}/health").json()
        assert health["status"] == "healthy" and health["active_jobs"] == 0
        assert from_two.get(f"{url}/status").status_code == 401  # the token is needed too
        status = from_two.get(f"{url}/status", headers=auth).json()
        assert status["worker_id"] == "agent-ip" and status["status"] == "online"
        assert status["capacity"] == {"max_concurrent": 2, "current_load": 0}
        assert "accept" in status["providers"] and "quick" in status["actions"]["accept"]
        assert set(status["job_stats"]) == {"active", "total", "successful", "failed"}
        assert {"uptime", "hostname", "system", "python_version", "selenium_available"} <= set(
            status
        )
        missing = from_two.get(f"{url}/status/999", headers=auth)
        assert missing.status_code == 404 and missing.json()["status"] == "not_found"
        # /execute only runs attempts the store says this agent holds.
        refused_job = from_two.post(
            f"{url}/execute", json={"job_id": 1, "attempt": 1}, headers=auth
        )
        assert refused_job.status_code == 409


def test_jobs_are_pushed_to_an_agent_and_run_there(system: System, store_for: SqlStore) -> None:
    agent_url = start_agent(system, "agent-1")
    system.server()
    job_ids = [system.submit("accept.quick", {"n": n}) for n in range(5)]
    for job_id in job_ids:
        system.wait_for(
            lambda j=job_id: system.job(j)["status"] == "succeeded", 30, f"job {job_id}"
        )
    for job_id in job_ids:
        job = store_for.get_job(job_id)
        assert [a.worker_id for a in job.attempts] == ["agent-1"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    state = httpx.get(f"{agent_url}/status/{job_ids[0]}", headers=auth).json()
    assert state["status"] == "completed" and state["result"] == {"n": 0}
    assert state["start_time"] and state["end_time"]
    workers = {w["id"]: w for w in system.api("GET", "/workers").json()}
    assert workers["agent-1"]["mode"] == "agent" and workers["agent-1"]["endpoint"] == agent_url


def test_a_killed_agent_loses_its_job_to_another_worker(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    job_id, agent = agent_running_a_job(system, "agent-doomed", seconds=30, markers=markers)
    assert store_for.get_job(job_id, detail=False).worker_id == "agent-doomed"
    agent.send_signal(signal.SIGKILL)
    agent.wait()

    # No other worker yet: the lease runs out and the job goes back to the queue.
    system.wait_for(lambda: system.job(job_id)["status"] == "queued", 30, "the job to be requeued")
    first = store_for.get_job(job_id).attempts[0]
    assert first.outcome == "lease_expired" and first.worker_id == "agent-doomed"

    system.worker("pull-rescuer", "--concurrency", "1")  # the same queue, served by a pull worker
    system.wait_for(lambda: any(markers.glob(f"{job_id}-2.started")), 30, "the second attempt")
    job = store_for.get_job(job_id)
    assert [a.worker_id for a in job.attempts] == ["agent-doomed", "pull-rescuer"]


@pytest.mark.parametrize("ips", ["[]", '["not-an-ip"]'])
def test_an_agent_no_one_could_safely_call_does_not_start(system: System, ips: str) -> None:
    system.env.update({"AUTHORIZED_WORKER_IPS": ips, "BOTYARD_WORKER_TOKEN": TOKEN})
    result = system.run("agent", "--automations", AUTOMATIONS, "--port", str(_free_port()))
    assert result.returncode == 2
    assert "AUTHORIZED_WORKER_IPS" in result.stderr


def test_sigterm_lets_the_agents_running_job_finish(
    system: System, store_for: SqlStore, tmp_path: Path
) -> None:
    job_id, agent = agent_running_a_job(
        system, "agent-graceful", seconds=2, markers=tmp_path / "markers"
    )
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(30) == 0
    job = store_for.get_job(job_id)
    assert job.status.value == "succeeded"
    assert [a.worker_id for a in job.attempts] == ["agent-graceful"]
