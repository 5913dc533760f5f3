"""A typed Python client for the orchestrator's REST API, on httpx."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from botyard.errors import BotyardError
from botyard.jobs import JobStatus

FINAL = {"succeeded", "failed", "cancelled", "needs_review"}


class ApiError(BotyardError):
    """The orchestrator refused the request."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}", status=status, detail=detail)
        self.status = status
        self.detail = detail


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text


class Client:
    """``Client("http://127.0.0.1:8620").login("admin", "…")``, then submit and wait."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8620",
        *,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.token = token

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return response.json()

    def login(self, username: str, password: str) -> str:
        answer = self._call("POST", "/token", data={"username": username, "password": password})
        self.token = str(answer["access_token"])
        return self.token

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def submit(
        self,
        automation: str,
        payload: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int = 0,
        not_before: datetime | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "automation": automation,
            "payload": payload or {},
            "priority": priority,
        }
        if queue is not None:
            body["queue"] = queue
        if not_before is not None:
            body["not_before"] = not_before.isoformat()
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        job: dict[str, Any] = self._call("POST", "/jobs", json=body)
        return job

    def get(self, job_id: int) -> dict[str, Any]:
        job: dict[str, Any] = self._call("GET", f"/jobs/{job_id}")
        return job

    def jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        automation: str | None = None,
        provider: str | None = None,
        queue: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of jobs, newest first: ``{"items", "total", "limit", "offset"}``."""
        filters = {"status": status, "automation": automation, "provider": provider, "queue": queue}
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        params.update({k: str(v) for k, v in filters.items() if v is not None})
        if since is not None:
            params["since"] = since.isoformat()
        page: dict[str, Any] = self._call("GET", "/jobs", params=params)
        return page

    def cancel(self, job_id: int) -> dict[str, Any]:
        job: dict[str, Any] = self._call("POST", f"/jobs/{job_id}/cancel")
        return job

    def retry(self, job_id: int) -> dict[str, Any]:
        job: dict[str, Any] = self._call("POST", f"/jobs/{job_id}/retry")
        return job

    def resolve(self, job_id: int, status: str, note: str) -> dict[str, Any]:
        job: dict[str, Any] = self._call(
            "POST", f"/jobs/{job_id}/resolve", json={"status": status, "note": note}
        )
        return job

    def logs(self, job_id: int, *, after: int = 0) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = self._call(
            "GET", f"/jobs/{job_id}/logs", params={"after": after}
        )["lines"]
        return lines

    def evidence(self, job_id: int) -> list[dict[str, Any]]:
        """The job's evidence files (``/jobs/{id}/screenshots``), oldest first."""
        items: list[dict[str, Any]] = self._call("GET", f"/jobs/{job_id}/screenshots")[
            "screenshots"
        ]
        return items

    def download(self, item: dict[str, Any] | int, path: Path | str | None = None) -> bytes:
        """One evidence file's bytes (an item of :meth:`evidence`, or its id); saved to ``path``."""
        url = f"/evidence/{item}" if isinstance(item, int) else str(item["url"])
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self.http.get(url, headers=headers)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        if path is not None:
            Path(path).write_bytes(response.content)
        return response.content

    def workers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/workers")
        return result

    def wait(
        self,
        job_id: int,
        *,
        timeout: float = 300.0,
        interval: float = 0.2,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until the job reaches a final status (or ``needs_review``); TimeoutError after."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in FINAL:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:g}s")
            time.sleep(interval)


class StandbyClient:
    """A standby task server: ``StandbyClient(url, token).send_task(...)``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8080", token: str | None = None, *,
                 timeout: float = 30.0) -> None:  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def __enter__(self) -> StandbyClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def health(self) -> dict[str, Any]:
        """``{status, mode, task_executing, timestamp, last_task}``."""
        return self._json(self.http.get("/health"))

    def send_task(
        self, script_url: str, script_name: str | None = None, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start a task; ``ApiError`` with the status on 400 / 401 / 409 / 500."""
        body = {
            "script_url": script_url,
            "script_name": script_name or script_url.rstrip("/").rsplit("/", 1)[-1],
            "payload": payload or {},
        }
        return self._json(self.http.post("/task", json=body))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        body: dict[str, Any] = response.json()
        return body
