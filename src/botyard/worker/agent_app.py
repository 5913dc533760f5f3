"""The agent's HTTP service (the HTTP worker service, port 8621).

Every request must come from an address in ``AUTHORIZED_WORKER_IPS`` (IPs and CIDRs, IPv4 and
IPv6; loopback only in development mode), else 403 ``Unauthorized IP address``. Everything but
``/health`` also needs ``BOTYARD_WORKER_TOKEN``: the orchestrator's requests are signed with it
(``botyard.agent_signature``: the token itself never travels), and a person may send it as a
bearer token. ``GET /status`` answers the orchestrator's registration challenge with a proof.
The peer address is the socket's: the agent's server ignores ``X-Forwarded-For``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import platform
import shutil
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from botyard.agent_signature import CHALLENGE_HEADER, SCHEME, SignatureCheck, audience, prove
from botyard.bearer import bearer_matches
from botyard.errors import ConfigurationError
from botyard.orchestrator.errors import error_body
from botyard.orchestrator.health import Clock
from botyard.settings import AgentSettings
from botyard.version import __version__
from botyard.worker.agent import AgentFull, AgentWorker, JobState, NotHeld

CallNext = Callable[[Request], Awaitable[Response]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def parse_networks(entries: list[str]) -> list[Network]:
    """``AUTHORIZED_WORKER_IPS`` entries as networks; a bad entry stops the agent."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ConfigurationError(
                f"AUTHORIZED_WORKER_IPS: {entry!r} is not an IP or CIDR"
            ) from exc
    return networks


def is_authorised(host: str | None, networks: list[Network], *, development: bool) -> bool:
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if development and any(address in net for net in _LOOPBACK):
        return True
    return any(address.version == net.version and address in net for net in networks)


def check_agent_settings(settings: AgentSettings, *, development: bool) -> None:
    """Refuse to start an agent no one could safely call."""
    parse_networks(settings.authorized_ips)
    if development:
        return
    if not settings.authorized_ips:
        raise ConfigurationError(
            "AUTHORIZED_WORKER_IPS is empty: set the orchestrators' addresses (or DEVELOPMENT_MODE)"
        )
    if settings.token is None:
        raise ConfigurationError(
            "BOTYARD_WORKER_TOKEN is not set: the agent needs the token the orchestrator sends"
        )


class ExecuteIn(BaseModel):
    """What the orchestrator pushes: the attempt it claimed in this agent's name."""

    model_config = ConfigDict(extra="forbid")

    job_id: int = Field(ge=1)
    attempt: int = Field(ge=1)


def _job_body(state: JobState) -> dict[str, Any]:
    return {
        "job_id": state.job_id,
        "attempt": state.attempt,
        "status": state.status,
        "result": state.result,
        "start_time": state.start_time.isoformat().replace("+00:00", "Z"),
        "end_time": state.end_time.isoformat().replace("+00:00", "Z") if state.end_time else None,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def selenium_available() -> bool:
    """Selenium importable and a chromedriver on the PATH."""
    return importlib.util.find_spec("selenium") is not None and bool(shutil.which("chromedriver"))


_MAX_SIGNED_BODY = 64 * 1024  # what the orchestrator posts is a few dozen bytes


async def _authenticate(
    request: Request, token: str, signatures: SignatureCheck | None
) -> Response | None:
    """None for a request signed with the token (or bearing it); else the refusal."""
    authorization = request.headers.get("authorization", "")
    if bearer_matches(authorization, token):
        return None
    if signatures is not None and authorization.startswith(SCHEME):
        # The body is read here to check its digest: only a small one of a declared length.
        length = request.headers.get("content-length", "0")
        chunked = "transfer-encoding" in request.headers
        if chunked or not length.isdigit() or int(length) > _MAX_SIGNED_BODY:
            body = error_body("Request body too large or of no stated length", "PayloadTooLarge")
            return JSONResponse(body, status_code=413)
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        target = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
        if signatures.valid(authorization, request.method, target, await request.body()):
            return None
    body = error_body("Could not validate credentials", "AuthenticationError")
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def create_agent_app(agent: AgentWorker, settings: AgentSettings, *, development: bool) -> FastAPI:
    networks = parse_networks(settings.authorized_ips)
    token = settings.token.get_secret_value() if settings.token else None
    # Signatures and proofs name the agent as the orchestrator addresses it (BOTYARD_AGENT_URL):
    # one addressed to another endpoint (relayed by it) is refused here.
    me = audience(agent.config.endpoint or f"http://{socket.gethostname()}:{settings.port}")
    signatures = SignatureCheck(token, me) if token else None
    clock = Clock()
    app = FastAPI(title="Botyard agent", version=__version__, docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = request.client.host if request.client else None
        # The container's own health probe comes from loopback: /health only, nothing else.
        probe = request.url.path == "/health" and is_authorised(host, [], development=True)
        if not probe and not is_authorised(host, networks, development=development):
            body = error_body("Unauthorized IP address", "PermissionDenied")
            return JSONResponse(body, status_code=403)
        if token is not None and request.url.path != "/health":
            refused = await _authenticate(request, token, signatures)
            if refused is not None:
                return refused
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "healthy", "timestamp": _now(), "active_jobs": agent.active}

    @app.get("/status")
    async def status(request: Request) -> dict[str, Any]:
        cfg, stats = agent.config, agent.stats
        challenge = request.headers.get(CHALLENGE_HEADER, "")[:200]
        proof = {"proof": prove(token, challenge, cfg.worker_id, me)} if token and challenge else {}
        actions: dict[str, list[str]] = {}
        for name in cfg.automations:
            provider, _, action = name.partition(".")
            actions.setdefault(provider, []).append(action)
        return {
            "status": "stopping" if agent.stopping else "online",
            "worker_id": cfg.worker_id,
            "version": __version__,
            "uptime": clock.uptime(),
            "hostname": socket.gethostname(),
            "system": platform.system(),
            "python_version": platform.python_version(),
            "selenium_available": selenium_available(),
            "providers": sorted(actions),
            "actions": {p: sorted(a) for p, a in sorted(actions.items())},
            "queues": cfg.queues,
            "job_stats": {
                "active": agent.active,
                "total": stats.processed,
                "successful": stats.succeeded,
                "failed": stats.processed - stats.succeeded,
            },
            "capacity": {"max_concurrent": cfg.concurrency, "current_load": agent.active},
            **proof,
        }

    @app.get("/status/{job_id}")
    async def job_status(job_id: int) -> JSONResponse:
        state = agent.state(job_id)
        if state is None:
            return JSONResponse({"job_id": job_id, "status": "not_found"}, status_code=404)
        return JSONResponse(_job_body(state))

    @app.post("/execute", status_code=202)
    async def execute(body: ExecuteIn) -> JSONResponse:
        try:
            # A thread: a slow store must not stall /health and /status on the event loop.
            state = await anyio.to_thread.run_sync(agent.accept, body.job_id, body.attempt)
        except AgentFull as exc:
            return JSONResponse(
                error_body(str(exc), "AgentFull"), status_code=429, headers={"Retry-After": "1"}
            )
        except NotHeld as exc:
            return JSONResponse(error_body(str(exc), "NotHeld"), status_code=409)
        return JSONResponse(_job_body(state), status_code=202)

    return app
