"""Push dispatch: hand queued jobs to agents (the HTTP worker services) as they arrive.

A bus wake-up (a submit, a retry, a recovery) makes the dispatcher look at every online agent
with free slots. For each it claims jobs in the agent's name with the ordinary claim statement
(so a job goes to one worker, agent or pull, and its attempt is recorded) and posts each to the
agent's ``/execute``. An agent that refuses (full, unreachable, not holding it) gets nothing: the
job is released without spending an attempt and other workers are woken. From ``/execute`` on
the agent renews the lease and writes the outcome itself; ``poll_agents`` (the maintenance job
``poll_worker_job_status``) ends the lease of any job its agent no longer knows.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import httpx

from botyard.agent_signature import CHALLENGE_HEADER, SignedRequests, audience, proof_matches
from botyard.bus.base import JOBS
from botyard.errors import BotyardError
from botyard.jobs import JobStatus
from botyard.orchestrator.health import stale_after
from botyard.orchestrator.service import JobService
from botyard.settings import Settings
from botyard.store.records import ClaimedJob, Completion, WorkerRecord
from botyard.store.workers import Workers

log = logging.getLogger("botyard.dispatch")

_BACKOFF_FULL = 1.0  # an agent that answered 429 is left alone this long
_BACKOFF_DOWN = 5.0  # and one that could not be reached this long
_BACKOFF_REFUSED = 60.0  # and one that refuses this orchestrator (token, allowlist)
_FORGET_GRACE = timedelta(seconds=15)  # an attempt this young may still be on its way
_AGENTS_FOR = 1.0  # the agents list is re-read from the store this often while busy


class AgentUnreachable(BotyardError):
    """The agent did not answer."""


class Delivery(Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  # the agent did not take it: release it
    UNKNOWN = "unknown"  # sent, no clear answer: its lease decides


@dataclass(frozen=True, slots=True)
class Pushed:
    job_id: int
    attempt: int
    agent: str


def base_url(endpoint: str) -> str:
    """An agent's base URL; agents may be named by their ``/execute`` URL."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint.removesuffix("/execute")


class AgentDispatcher:
    def __init__(self, service: JobService, settings: Settings) -> None:
        self.service = service
        self.store = service.store
        self.bus = service.bus
        self.settings = settings
        token = settings.agent.token
        self._token = token.get_secret_value() if token else None
        # Requests are signed with the worker token, never carry it (botyard.agent_signature).
        auth = SignedRequests(self._token) if self._token else None
        self.http = httpx.Client(timeout=settings.agent.request_timeout, auth=auth)
        self._resting: dict[str, float] = {}  # agent id -> monotonic time it may be tried again
        self._agents: list[WorkerRecord] = []
        self._agents_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="botyard-dispatch", daemon=True)
        self._lock = threading.Lock()  # one dispatch round at a time in this process

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        # With Redis dispatch, new jobs go to Redis lists and not the bus: hear of them here.
        self.service.wakeups.on_jobs(self.wake)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.http.close()

    def wake(self) -> None:
        self._wake.set()

    def refresh(self) -> None:
        """Re-read the agents at the next round, and try those resting again."""
        self._agents_until = 0.0
        self._resting.clear()

    def _run(self) -> None:
        subscription = self.bus.subscribe()
        listener = threading.Thread(
            target=self._listen, args=(subscription,), name="botyard-dispatch-bus", daemon=True
        )
        listener.start()
        try:
            self.discover()
        except Exception:
            log.exception("discovering WORKER_ENDPOINTS failed")
        interval = self.settings.worker.poll_interval
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.dispatch()
            except Exception:
                log.exception("dispatch round failed")
        listener.join(timeout=5)

    def _listen(self, subscription: Any) -> None:
        try:
            while not self._stop.is_set():
                try:
                    events = subscription.wait(0.1)  # short: stop() waits for it
                except Exception:
                    log.exception("bus wait failed")
                    time.sleep(1.0)
                    continue
                if any(event.kind == JOBS for event in events):
                    self._wake.set()
        finally:
            subscription.close()

    # -- dispatching ---------------------------------------------------------------------

    def online_agents(self) -> list[WorkerRecord]:
        """Agents with a recent heartbeat, read from the store at most every second."""
        now = time.monotonic()
        if now >= self._agents_until:
            self._agents = self.store.workers.agents()
            self._agents_until = now + _AGENTS_FOR
        moment, stale = datetime.now(UTC), stale_after(self.settings)
        return [a for a in self._agents if Workers.is_online(a, moment, stale)]

    def dispatch(self) -> list[Pushed]:
        """One round: fill every agent's free slots with runnable jobs it can run."""
        with self._lock:
            pushed: list[Pushed] = []
            agents = self.online_agents()
            if not agents:
                return pushed
            running = self.store.workers.running_counts()
            now = time.monotonic()
            for agent in agents:
                if self._resting.get(agent.id, 0.0) > now or agent.status == "stopping":
                    continue
                free = agent.capacity - running.get(agent.id, 0)
                if free <= 0:
                    continue
                claimed = self.store.claim(
                    agent.id,
                    queues=agent.queues,
                    automations=agent.automations,
                    limit=free,
                    lease_ttl=self.settings.lease.lease_ttl,
                )
                pending = list(claimed)
                try:
                    while pending and not self._stop.is_set():
                        job = pending[0]
                        delivery = self._push(agent, job)
                        if delivery is Delivery.REFUSED:
                            break  # this agent takes no more this round
                        pending.pop(0)
                        if delivery is Delivery.ACCEPTED:
                            pushed.append(Pushed(job.id, job.attempt, agent.id))
                finally:
                    if pending:  # never reached the agent: back to the queue, no attempt spent
                        self._release(pending)
            return pushed

    def _push(self, agent: WorkerRecord, job: ClaimedJob) -> Delivery:
        assert agent.endpoint is not None
        url = f"{base_url(agent.endpoint)}/execute"
        try:
            answer = self.http.post(url, json={"job_id": job.id, "attempt": job.attempt})
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the request never left
            log.warning("agent %s at %s unreachable: %s", agent.id, url, exc)
            self._resting[agent.id] = time.monotonic() + _BACKOFF_DOWN
            return Delivery.REFUSED
        except httpx.HTTPError as exc:
            # Sent, but no answer: the agent may be running it. Its lease and poll_agents
            # decide; releasing it here could run it twice.
            log.warning("agent %s did not answer for job %s: %s", agent.id, job.id, exc)
            self._resting[agent.id] = time.monotonic() + _BACKOFF_DOWN
            return Delivery.UNKNOWN
        if answer.status_code == 202:
            log.debug("job %s attempt %s pushed to %s", job.id, job.attempt, agent.id)
            return Delivery.ACCEPTED
        code = answer.status_code
        if code in (401, 403):  # a configuration error: the token or the allowlist
            log.error(
                "agent %s refuses this orchestrator (HTTP %s): check BOTYARD_WORKER_TOKEN,"
                " AUTHORIZED_WORKER_IPS and that the clocks agree (5 min); not trying it for %g s",
                agent.id,
                code,
                _BACKOFF_REFUSED,
            )
            self._resting[agent.id] = time.monotonic() + _BACKOFF_REFUSED
            return Delivery.REFUSED
        self._resting[agent.id] = time.monotonic() + (
            _BACKOFF_FULL if code == 429 else _BACKOFF_DOWN
        )
        log.warning(
            "agent %s refused job %s: HTTP %s %s", agent.id, job.id, code, answer.text[:200]
        )
        # 429, 409 and 422 are the agent saying no; after a 5xx it may have taken the job.
        return Delivery.REFUSED if code < 500 else Delivery.UNKNOWN

    def _release(self, jobs: list[ClaimedJob]) -> None:
        """Back to the queue, no attempt spent; other workers are woken for them."""
        statuses = self.store.finish([Completion.release(j) for j in jobs])
        if self.service.events.enabled:
            for job, status in zip(jobs, statuses, strict=True):
                if status is not None:
                    self.service.announce(
                        self.store.get_job(job.id, detail=False), JobStatus.RUNNING
                    )
        for queue in {j.queue for j in jobs}:
            self.service.wakeups.jobs(queue, [j.id for j in jobs if j.queue == queue])

    # -- agents: registration and follow-up -------------------------------------------------

    def register(self, endpoint: str) -> WorkerRecord:
        """Ask the agent at ``endpoint`` who it is and remember where it is reached.

        With a worker token the agent must prove it holds the same one (its answer to a
        challenge), so that nothing else can take an agent's place in the store.
        """
        url = base_url(endpoint)
        challenge = secrets.token_urlsafe(24)
        try:
            answer = self.http.get(f"{url}/status", headers={CHALLENGE_HEADER: challenge})
        except httpx.HTTPError as exc:
            raise AgentUnreachable(f"{url}: {exc}", endpoint=url) from exc
        if answer.status_code != 200:
            raise AgentUnreachable(f"{url}/status answered HTTP {answer.status_code}")
        try:
            body = answer.json()
            worker_id = str(body["worker_id"])
        except (ValueError, KeyError, TypeError):
            raise AgentUnreachable(f"{url}/status is not an agent's answer") from None
        if self._token is not None and not proof_matches(
            self._token, challenge, worker_id, audience(url), body.get("proof")
        ):
            raise AgentUnreachable(
                f"{url} did not prove it is an agent of this installation"
                " (is its BOTYARD_WORKER_TOKEN this orchestrator's, and its BOTYARD_AGENT_URL"
                " this URL?)"
            )
        known = self.store.workers.get(worker_id)
        if known is None or known.mode != "agent":
            raise AgentUnreachable(f"{url} is not an agent of this store (id {worker_id!r})")
        self.store.workers.set_endpoint(worker_id, url)
        record = self.store.workers.get(worker_id)
        assert record is not None
        self.refresh()
        self.wake()
        return record

    def discover(self) -> list[str]:
        """Register every ``WORKER_ENDPOINTS`` agent that answers; returns their ids."""
        found = []
        for endpoint in self.settings.agent.endpoints:
            try:
                found.append(self.register(endpoint).id)
            except AgentUnreachable as exc:
                log.warning("WORKER_ENDPOINTS: %s", exc)
        return found

    def poll_agents(self, *, grace: timedelta = _FORGET_GRACE) -> dict[str, Any]:
        """Follow the agents' jobs: end the lease of every attempt its agent does not know.

        Attempts younger than ``grace`` are left alone: their ``/execute`` may be in flight.
        """
        self.discover()
        forgotten: list[int] = []
        unreachable: list[str] = []
        cutoff = datetime.now(UTC) - grace
        for agent in self.store.workers.agents():
            held = self.store.workers.running_attempts(agent.id)
            if not held:
                continue
            assert agent.endpoint is not None
            for job_id, attempt, started in held:
                if started is not None and started > cutoff:
                    continue  # it may still be on its way to the agent
                try:
                    answer = self.http.get(f"{base_url(agent.endpoint)}/status/{job_id}")
                except httpx.HTTPError:
                    unreachable.append(agent.id)  # a dead agent stops renewing: leases expire
                    break
                try:
                    reported = answer.json().get("attempt") if answer.status_code == 200 else None
                except (ValueError, AttributeError):
                    unreachable.append(agent.id)  # not an agent's answer: leave it to its lease
                    break
                known = reported == attempt
                forgot = not known and answer.status_code in (200, 404)
                if forgot and self.store.expire_lease(job_id, attempt, agent.id):
                    log.warning(
                        "agent %s does not know job %s attempt %s; recovering it",
                        agent.id,
                        job_id,
                        attempt,
                    )
                    forgotten.append(job_id)
        if forgotten:
            self.service.recover()  # the ordinary recovery: requeue or review, wake workers
        return {"forgotten": forgotten, "unreachable": sorted(set(unreachable))}
