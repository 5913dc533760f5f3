"""schemathesis against a real orchestrator on each store: no request may answer 5xx.

Every operation of the OpenAPI schema gets a bounded number of generated requests, both ones
that fit the schema and ones that break it, authenticated as the admin (the worker token for
the external jobs' routes; for the TOTP ones a running attempt's credential, since the raw
worker token is refused there and every case would stop at 401). Generation is derandomised,
so a run is repeatable; for a longer search set ``BOTYARD_FUZZ_EXAMPLES`` higher and
``BOTYARD_FUZZ_RANDOM=1`` for new cases each run (the outside audit ran ~40,000 cases).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from botyard import attempt_credentials
from tests.acceptance.conftest import System

EXAMPLES = int(os.environ.get("BOTYARD_FUZZ_EXAMPLES", "12"))  # per operation and mode
RANDOM = os.environ.get("BOTYARD_FUZZ_RANDOM") == "1"
WORKER_TOKEN = "fuzz-worker-token-that-is-long-enough-0123456789"
# Left out: registering an agent makes the orchestrator call whatever URL was generated, and
# provisioning a browser starts a Chromium for each case.
SKIPPED = {("POST", "/workers/agents"), ("POST", "/browsers")}
MIN_OPERATIONS = 35
# The provider of the running job's automation, with a secret, so that a TOTP case the route
# takes gets as far as a code.
PROVIDER = "fuzz"
# One-second steps, each usable to its end: a case waits at most a second for its code.
TOTP_ENV = {
    "FUZZ_TOTP_SECRET": "JBSWY3DPEHPK3PXP",
    "FUZZ_TOTP_INTERVAL": "1",
    "TOTP_MIN_VALIDITY": "0",
}


def _totp_route(path: str) -> bool:
    return path.startswith("/totp/{provider}/")


@dataclass
class Tally:
    cases: dict[str, int] = field(default_factory=dict)
    # Cases the route itself answered: past authentication (and, for TOTP, the job's own).
    taken: dict[str, int] = field(default_factory=dict)
    errors: dict[tuple[str, int], str] = field(default_factory=dict)  # distinct by operation


@dataclass
class RunningAttempt:
    """The credential of an external job's attempt, started again whenever a generated case
    (a cancel, a finish) has ended it, so that the TOTP routes always see a running one."""

    url: str
    admin: dict[str, str]
    job_id: int = 0
    attempt: int = 0
    started: int = 0

    def headers(self) -> dict[str, str]:
        if not self.job_id or self._job_status() != "running":
            self.started += 1
            answer = httpx.post(
                f"{self.url}/jobs/external",
                json={
                    "automation": f"{PROVIDER}.task",
                    "worker_id": "fuzz-standby",
                    "task_id": f"fuzz-{self.started}",
                    "timeout": 3600,
                },
                headers={"Authorization": f"Bearer {WORKER_TOKEN}"},
            )
            assert answer.status_code == 201, answer.text
            self.job_id, self.attempt = answer.json()["job_id"], answer.json()["attempt"]
        credential = attempt_credentials.mint(WORKER_TOKEN, self.job_id, self.attempt)
        return {"Authorization": f"Bearer {credential}"}

    def _job_status(self) -> str:
        answer = httpx.get(f"{self.url}/jobs/{self.job_id}", headers=self.admin)
        return str(answer.json()["status"]) if answer.status_code == 200 else "gone"


@pytest.fixture
def orchestrator(system: System) -> System:
    system.env["BOTYARD_WORKER_TOKEN"] = WORKER_TOKEN
    system.env.update(TOTP_ENV)
    system.server()
    return system


def test_no_generated_request_answers_5xx(orchestrator: System) -> None:
    schema = schemathesis.openapi.from_url(f"{orchestrator.url}/openapi.json")
    admin = {"Authorization": f"Bearer {orchestrator.token}"}
    worker = {"Authorization": f"Bearer {WORKER_TOKEN}"}
    attempt = RunningAttempt(orchestrator.url, admin)
    tally = Tally()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        if _totp_route(operation.path):
            headers = attempt.headers
        else:
            headers = _always(worker if "/external" in operation.path else admin)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _explore(operation, mode, headers, attempt, orchestrator.url, tally)
    report = "\n".join(f"{op} -> {status}: {curl}" for (op, status), curl in tally.errors.items())
    if tally.errors:
        log = (orchestrator.data_dir / "processes.log").read_text(errors="replace")
        report += "\n\nserver log (end):\n" + log[-6000:]
    assert not tally.errors, f"{len(tally.errors)} distinct 5xx:\n{report}"
    print(f"{sum(tally.cases.values())} cases over {len(tally.cases)} operations, no 5xx")
    behind = {label: n for label, n in tally.taken.items() if "/totp/" in label}
    print(f"TOTP cases past the credential: {behind}; {attempt.started} external job(s) run")
    # Never vacuous: every operation was reached, each with more than a handful of cases.
    assert len(tally.cases) >= MIN_OPERATIONS, sorted(tally.cases)
    assert sum(tally.cases.values()) >= len(tally.cases) * EXAMPLES, tally.cases
    # And the routes behind a credential were reached past it, not refused at the door.
    for label in tally.cases:
        if "/totp/{provider}/" in label or "/external" in label:
            assert tally.taken.get(label, 0) >= EXAMPLES // 2, (label, tally.taken)


def _always(headers: dict[str, str]) -> Callable[[], dict[str, str]]:
    return lambda: headers


def _explore(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: Callable[[], dict[str, str]],
    attempt: RunningAttempt,
    base_url: str,
    tally: Tally,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    # Cases that fit the schema are pointed at the running job's own provider and id (a
    # generated one is refused with 403 before the route does anything).
    own = mode is GenerationMode.POSITIVE and _totp_route(operation.path)

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=not RANDOM,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        sent = headers()
        if own:
            case.path_parameters = {**(case.path_parameters or {}), "provider": PROVIDER}
            if isinstance(case.body, dict) and "job_id" in case.body:
                case.body["job_id"] = attempt.job_id
        response = case.call(base_url=base_url, headers=sent, timeout=90)
        tally.cases[label] = tally.cases.get(label, 0) + 1
        if response.status_code not in (401, 403):
            tally.taken[label] = tally.taken.get(label, 0) + 1
        if response.status_code >= 500:
            key = (label, response.status_code)
            tally.errors.setdefault(key, case.as_curl_command(headers=sent))

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, label  # nothing to break: no parameters
