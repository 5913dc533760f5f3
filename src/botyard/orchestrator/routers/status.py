"""``/status`` (the rollup) and ``/metrics`` (JSON: history, averages, current)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from botyard.masking import mask_url
from botyard.orchestrator.deps import RuntimeDep
from botyard.orchestrator.health import (
    Clock,
    Level,
    Snapshot,
    averages,
    rollup,
    stale_after,
    take_snapshot,
)
from botyard.orchestrator.prometheus import render, wants_prometheus
from botyard.orchestrator.scheduler import Maintenance
from botyard.version import __version__
from botyard.wiring import Runtime

router = APIRouter(tags=["health"])

_METRIC_KEYS = ("queued_jobs", "running_jobs", "completed_jobs", "failed_jobs")


def current_snapshot(request: Request, runtime: Runtime) -> Snapshot:
    """What the rollup looks at now (``/status``, ``/metrics``, the dashboard)."""
    maintenance: Maintenance = request.app.state.maintenance
    return take_snapshot(
        runtime.store,
        stale_after=stale_after(runtime.settings),
        scheduler_running=bool(maintenance.scheduler.running),
    )


@router.get("/status")
def status(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Everything at a glance, with the green / yellow / red health rollup and its reasons."""
    clock: Clock = request.app.state.clock
    maintenance: Maintenance = request.app.state.maintenance
    snap = current_snapshot(request, runtime)
    level, reasons = rollup(snap)
    scheduler = maintenance.status()
    return {
        "status": level.value,
        "reasons": reasons,
        "version": __version__,
        "uptime": clock.uptime(),
        "store": {"ok": snap.store_ok, "backend": runtime.store.dialect},
        "redis": _redis(runtime),
        "scheduler": {
            "running": scheduler["running"],
            "job_count": scheduler["job_count"],
            "leader": scheduler["leader"],
            "replica": scheduler["replica"],
        },
        "workers": {
            "online": snap.workers_online,
            "total": len(snap.workers),
            "capacity": snap.capacity,
            "active": snap.active,
            "utilisation": round(snap.utilisation, 3),
        },
        "queue": {"depth": snap.queue_depth, "by_queue": snap.queues},
        "jobs": snap.counts,
        "failure_rate_last_hour": round(snap.failure_rate, 4),
        "browsers": _browsers(runtime),
    }


def _redis(runtime: RuntimeDep) -> dict[str, Any]:
    url = runtime.settings.redis.url
    if url is None or runtime.redis is None:
        return {"configured": False}
    from botyard.bus.redis_events import probe

    ok, latency = probe(runtime.redis)
    answer: dict[str, Any] = {
        "configured": True,
        "ok": ok,
        "latency_ms": latency,
        "url": mask_url(url),
        "dispatch": runtime.lists is not None,
    }
    if ok and runtime.lists is not None:
        with contextlib.suppress(Exception):  # gone between the probe and now: say so above
            answer["entries"], answer["taken"] = runtime.lists.depths()
    return answer


def _browsers(runtime: RuntimeDep) -> dict[str, Any]:
    try:
        figures = runtime.store.browsers.figures()
    except Exception:  # the store's failure is reported above; this section stays readable
        return {"provider": runtime.settings.browser.provider, "ok": False}
    return {
        "provider": runtime.settings.browser.provider,
        "open": sum(figures["open"].values()),
        "open_by_provider": figures["open"],
        "leaked_killed": figures["leaked"],
    }


_EXPOSITION = {
    "prometheus": "text/plain; version=0.0.4",
    "openmetrics": "application/openmetrics-text; version=1.0.0",
}


@router.get(
    "/metrics",
    response_model=None,
    responses={
        200: {
            "description": "JSON by default; the Prometheus text format or OpenMetrics when the"
            " Accept header asks for it (as Prometheus does) or with ?format=",
            "content": {
                "application/json": {},
                "text/plain": {},
                "application/openmetrics-text": {},
            },
        }
    },
)
def metrics(
    request: Request,
    runtime: RuntimeDep,
    format: Annotated[Literal["json", "prometheus", "openmetrics"] | None, Query()] = None,
) -> Response:
    """The JSON ``{metrics, averages, current}``, or the Prometheus exposition of the store."""
    accept = request.headers.get("accept", "")
    if format in _EXPOSITION or (format is None and wants_prometheus(accept)):
        registry: CollectorRegistry = request.app.state.prometheus
        body, content_type = render(registry, _EXPOSITION.get(format or "", accept))
        return Response(body, media_type=content_type)
    return JSONResponse(_metrics_json(request, runtime))


def _metrics_json(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    clock: Clock = request.app.state.clock
    snap = current_snapshot(request, runtime)
    level, _ = rollup(snap)
    points = (
        [
            {
                "timestamp": p.at.isoformat().replace("+00:00", "Z"),
                "queued_jobs": p.queued_jobs,
                "running_jobs": p.running_jobs,
                "completed_jobs": p.completed_jobs,
                "failed_jobs": p.failed_jobs,
            }
            for p in runtime.store.metrics.history()
        ]
        if snap.store_ok
        else []
    )
    return {
        "metrics": points,
        "averages": averages(points, _METRIC_KEYS),
        "current": {
            "status": "degraded" if level is Level.RED else "online",
            "uptime": clock.uptime(),
            "queued_jobs": snap.counts.get("queued", 0),
            "running_jobs": snap.counts.get("running", 0),
            "completed_jobs": snap.counts.get("succeeded", 0),
            "failed_jobs": snap.counts.get("failed", 0),
            "workers": snap.workers,
            "version": __version__,
        },
    }
