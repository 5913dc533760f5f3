"""schemathesis against a real orchestrator on each store: no request may answer 5xx.

Every operation of the OpenAPI schema gets a bounded number of generated requests, both ones
that fit the schema and ones that break it, authenticated as the admin (the worker token for
the workers' routes). Generation is derandomised, so a run is repeatable; for a longer search
set ``BOTYARD_FUZZ_EXAMPLES`` higher and ``BOTYARD_FUZZ_RANDOM=1`` for new cases each run (the
outside audit ran ~40,000 cases).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.acceptance.conftest import System

EXAMPLES = int(os.environ.get("BOTYARD_FUZZ_EXAMPLES", "12"))  # per operation and mode
RANDOM = os.environ.get("BOTYARD_FUZZ_RANDOM") == "1"
WORKER_TOKEN = "fuzz-worker-token-that-is-long-enough-0123456789"
# Left out: registering an agent makes the orchestrator call whatever URL was generated, and
# provisioning a browser starts a Chromium for each case.
SKIPPED = {("POST", "/workers/agents"), ("POST", "/browsers")}
MIN_OPERATIONS = 35


def _worker_route(path: str) -> bool:
    return "/external" in path or path.startswith("/totp/{provider}/")


@dataclass
class Tally:
    cases: dict[str, int] = field(default_factory=dict)
    errors: dict[tuple[str, int], str] = field(default_factory=dict)  # distinct by operation


@pytest.fixture
def orchestrator(system: System) -> System:
    system.env["BOTYARD_WORKER_TOKEN"] = WORKER_TOKEN
    system.server()
    return system


def test_no_generated_request_answers_5xx(orchestrator: System) -> None:
    schema = schemathesis.openapi.from_url(f"{orchestrator.url}/openapi.json")
    admin = {"Authorization": f"Bearer {orchestrator.token}"}
    worker = {"Authorization": f"Bearer {WORKER_TOKEN}"}
    tally = Tally()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        headers = worker if _worker_route(operation.path) else admin
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _explore(operation, mode, headers, orchestrator.url, tally)
    report = "\n".join(f"{op} -> {status}: {curl}" for (op, status), curl in tally.errors.items())
    if tally.errors:
        log = (orchestrator.data_dir / "processes.log").read_text(errors="replace")
        report += "\n\nserver log (end):\n" + log[-6000:]
    assert not tally.errors, f"{len(tally.errors)} distinct 5xx:\n{report}"
    print(f"{sum(tally.cases.values())} cases over {len(tally.cases)} operations, no 5xx")
    # Never vacuous: every operation was reached, each with more than a handful of cases.
    assert len(tally.cases) >= MIN_OPERATIONS, sorted(tally.cases)
    assert sum(tally.cases.values()) >= len(tally.cases) * EXAMPLES, tally.cases


def _explore(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
    base_url: str,
    tally: Tally,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"

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
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        tally.cases[label] = tally.cases.get(label, 0) + 1
        if response.status_code >= 500:
            key = (label, response.status_code)
            tally.errors.setdefault(key, case.as_curl_command(headers=headers))

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, label  # nothing to break: no parameters
