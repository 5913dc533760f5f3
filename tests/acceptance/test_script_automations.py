"""The README's route for a standalone script, as written: ``botyard server --script`` and
``botyard worker --script``, a submit over HTTP, and the job's result and log lines."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.acceptance.conftest import System

# The README's example script, with a line of output.
EXPORT = """\
import json, os
payload = json.load(open(os.environ["BOTYARD_PAYLOAD_FILE"]))
print("exporting", payload["report"])
json.dump({"rows": 42}, open(os.environ["BOTYARD_RESULT_FILE"], "w"))
"""


def test_a_script_automation_runs_end_to_end(system: System, tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "export.py").write_text(EXPORT)
    system.cwd = tmp_path  # the README's relative path, from the folder the commands run in
    route = "reports.export=scripts/export.py"
    system.server("--script", route)
    system.worker("script-worker", "--script", route)

    job_id = system.submit("reports.export", {"report": "monthly"})
    system.wait_for(
        lambda: system.job(job_id)["status"] in ("succeeded", "failed"), 30, "the script's job"
    )
    job = system.job(job_id)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"rows": 42}
    lines = system.api("GET", f"/jobs/{job_id}/logs").json()["lines"]
    assert "exporting monthly" in [line["message"] for line in lines]

    unknown = system.api("POST", "/jobs", json={"automation": "reports.missing", "payload": {}})
    assert unknown.status_code == 422  # only the scripts it was given


def test_a_script_path_that_is_not_there_stops_the_server_in_a_line(system: System) -> None:
    refused = system.run("server", "--port", "1", "--script", "reports.export=nowhere/export.py")
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip() == "automation 'reports.export': no script at nowhere/export.py"


def test_up_gives_its_scripts_to_the_orchestrator_and_the_workers(
    system: System, tmp_path: Path
) -> None:
    script = tmp_path / "export.py"
    script.write_text(EXPORT)
    port = _free_port()
    up = system.botyard(
        "up", "--port", str(port), "-w", "1", "--script", f"reports.export={script}"
    )
    system.url = f"http://127.0.0.1:{port}"
    system.wait_for(lambda: _ready(system.url), 60, "botyard up")
    answer = httpx.post(
        f"{system.url}/token",
        data={"username": "admin", "password": system.env["ADMIN_PASSWORD"]},
        timeout=10,
    )
    system.token = answer.json()["access_token"]
    job_id = system.submit("reports.export", {"report": "weekly"})
    system.wait_for(
        lambda: system.job(job_id)["status"] in ("succeeded", "failed"), 30, "the script's job"
    )
    assert system.job(job_id)["result"] == {"rows": 42}
    assert up.poll() is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
