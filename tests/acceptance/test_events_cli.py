"""`botyard events --json` follows a job run by a real orchestrator and worker over Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import System

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("BOTYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: what is tested here is the Redis side."""
    return f"sqlite:///{tmp_path}/botyard.db"


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """Channels and keys of the test's own (``redis_prefix`` removes them after)."""
    return redis_prefix


def test_events_json_prints_a_jobs_life(system: System, prefix: str, redis_client: Any) -> None:
    system.env.update(REDIS_URL=REDIS_URL, BOTYARD_REDIS_PREFIX=prefix)
    system.server()
    system.worker("cli-events-w1")
    follower = subprocess.Popen(
        [sys.executable, "-m", "botyard", "events", "--json", "--queue", "default"],
        env=system.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, Any]] = []
    finished = threading.Event()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(json.loads(line))
            if lines[-1]["status"] == "succeeded":
                finished.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The subscription must be in place before the job is submitted.
        system.wait_for(
            lambda: redis_client.pubsub_numsub(f"{prefix}:events:jobs:default")[0][1] >= 1,
            timeout=20,
            what="botyard events to subscribe",
        )
        job_id = system.submit("accept.quick", {"n": 1})
        assert finished.wait(30), lines
    finally:
        follower.terminate()
        follower.wait(10)
        reader.join(10)
        for pipe in (follower.stdout, follower.stderr):
            if pipe is not None:
                pipe.close()
    # Two processes publish (the orchestrator "queued", the worker the rest): their order on
    # the wire is best effort, their ``at`` is not.
    mine = sorted((e for e in lines if e["job_id"] == job_id), key=lambda e: e["at"])
    assert [e["status"] for e in mine] == ["queued", "running", "succeeded"]
    assert mine[1]["worker_id"] == mine[2]["worker_id"] == "cli-events-w1"
    assert all(e["v"] == 1 and e["type"] == "job.status" for e in mine)


def test_events_without_redis_exits_2(system: System) -> None:
    for name in ("REDIS_URL", "VALKEY_HOST"):
        system.env.pop(name, None)
    result = system.run("events", "--json", timeout=30)
    assert result.returncode == 2
    assert "Redis is not configured" in result.stderr
