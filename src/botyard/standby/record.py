"""Recording standby tasks as jobs on the orchestrator (``BOTYARD_URL`` + ``BOTYARD_WORKER_TOKEN``).

Recording never decides a task's fate: an orchestrator that cannot be reached is logged, and
the task runs anyway. A task the orchestrator saw start but never saw end fails there when its
lease (``WORKER_TIMEOUT`` plus a minute) runs out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from botyard.settings import StandbySettings
from botyard.standby.task import Task, TaskOutcome

log = logging.getLogger("botyard.standby")


@dataclass(frozen=True, slots=True)
class Recorded:
    job_id: int
    attempt: int


def automation_name(script_name: str) -> str:
    """``export-Report.py`` → ``standby.export_report``."""
    stem = re.sub(r"[^a-z0-9_]", "_", Path(script_name).stem.lower()).strip("_")
    return f"standby.{stem or 'script'}"


class OrchestratorRecorder:
    def __init__(self, settings: StandbySettings, worker_token: SecretStr | None) -> None:
        assert settings.orchestrator_url is not None
        token = worker_token.get_secret_value() if worker_token else ""
        self.settings = settings
        self.http = httpx.Client(
            base_url=settings.orchestrator_url.rstrip("/"),
            timeout=10.0,
            headers={"Authorization": f"Bearer {token}"},
        )

    def started(self, task: Task) -> Recorded | None:
        body = {
            "automation": automation_name(task.script_name),
            "payload": task.payload,
            "worker_id": self.settings.worker_id,
            "task_id": task.id,
            "timeout": self.settings.timeout,
        }
        try:
            answer = self.http.post("/jobs/external", json=body)
            answer.raise_for_status()
            recorded = Recorded(int(answer.json()["job_id"]), int(answer.json()["attempt"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("task %s: could not record it on the orchestrator: %s", task.id, exc)
            return None
        log.info("task %s is job %d on the orchestrator", task.id, recorded.job_id)
        return recorded

    def finished(self, recorded: Recorded, outcome: TaskOutcome) -> None:
        body = {
            "attempt": recorded.attempt,
            "worker_id": self.settings.worker_id,
            "outcome": "succeeded"
            if outcome.succeeded
            else "timeout"
            if outcome.timed_out
            else "error",
            "result": outcome.result if outcome.succeeded else None,
            "error": None
            if outcome.succeeded
            else {
                "type": "TaskFailed",
                "message": outcome.error or "the task failed",
                "output_tail": outcome.output_tail[-10:],
            },
        }
        try:
            self.http.post(f"/jobs/{recorded.job_id}/external/finish", json=body).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("job %d: could not record its outcome: %s", recorded.job_id, exc)

    def close(self) -> None:
        self.http.close()
