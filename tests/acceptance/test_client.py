"""``botyard.Client`` against a real orchestrator and pull worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from botyard import Client
from botyard.client import ApiError
from tests.acceptance.conftest import System


def test_the_client_end_to_end(system: System, tmp_path: Path) -> None:
    system.server()
    system.worker("client-worker", "--concurrency", "2")
    with Client(system.url) as client:
        with pytest.raises(ApiError) as refused:
            client.login("admin", "wrong")
        assert refused.value.status == 401
        client.login("admin", system.env["ADMIN_PASSWORD"])

        job = client.submit("accept.evidence", {"text": "FTTH-000123"}, idempotency_key="k-1")
        assert (
            client.submit("accept.evidence", {"text": "x"}, idempotency_key="k-1")["id"]
            == job["id"]
        )
        done = client.wait(job["id"], timeout=30)
        assert done["status"] == "succeeded" and done["result"] == {"kept": "FTTH-000123"}
        assert [s["name"] for s in client.get(job["id"])["steps"]] == ["capture"]
        assert any("FTTH-000123" in line["message"] for line in client.logs(job["id"]))

        (item,) = client.evidence(job["id"])
        assert item["name"] == "capture.txt"
        saved = tmp_path / "copy.txt"
        assert client.download(item, saved) == b"FTTH-000123" == saved.read_bytes()
        assert client.download(item["id"]) == b"FTTH-000123"

        page = client.jobs(automation="accept.evidence")
        assert page["total"] == 1 and page["items"][0]["id"] == job["id"]

        slow = client.submit("accept.sleepy", {"seconds": 30})
        with pytest.raises(TimeoutError):
            client.wait(slow["id"], timeout=0.5)
        assert client.cancel(slow["id"])["status"] == "cancelled"
        with pytest.raises(ApiError) as conflict:
            client.retry(slow["id"])  # a cancelled job is final
        assert conflict.value.status == 409

        for payload in ({"text": 1}, {"txt": "typo"}):
            with pytest.raises(ApiError) as invalid:
                client.submit("accept.evidence", payload)
            assert invalid.value.status == 422
