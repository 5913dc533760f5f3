"""Liveness and readiness for load balancers and probes."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from botyard.orchestrator.deps import RuntimeDep
from botyard.orchestrator.health import disk_problems, store_state
from botyard.orchestrator.schemas import Health

router = APIRouter(tags=["health"])


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@router.get("/health")
async def health() -> Health:
    return Health(status="healthy", timestamp=_now())


@router.get("/health/live")
async def live() -> Health:
    return Health(status="alive", timestamp=_now())


@router.get("/health/ready", responses={503: {"description": "a dependency is down"}})
def ready(runtime: RuntimeDep) -> JSONResponse:
    checks = {"store": store_state(runtime.store.engine)}  # a write: one per READY_CACHE_SECONDS
    data_dir = runtime.settings.store.data_dir
    room = disk_problems(
        [("data directory", data_dir), ("evidence directory", data_dir / "evidence")],
        runtime.settings.server.min_free_bytes,
    )
    checks["disk"] = "; ".join(room) if room else "ok"
    failing = [name for name, state in checks.items() if state != "ok"]
    if runtime.redis is not None:  # listed only when configured
        from botyard.bus.redis_events import probe

        ok, _latency = probe(runtime.redis)
        # Reported, never failing readiness: without Redis jobs still run (the store is the
        # truth), and taking every replica out of the balancer would stop them all.
        checks["redis"] = "ok" if ok else "unavailable (degraded: no events, no heartbeat keys)"
    body: dict[str, object] = {
        "status": "ready" if not failing else "not_ready",
        "checks": checks,
        "timestamp": _now(),
    }
    if failing:
        body["detail"] = "not ready: " + "; ".join(f"{name} {checks[name]}" for name in failing)
    return JSONResponse(body, status_code=503 if failing else 200)
