"""The orchestrator's FastAPI app factory."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from botyard import dashboard
from botyard.masking import Masker, install_log_masking
from botyard.orchestrator import errors, preflight
from botyard.orchestrator.auth import Authenticator, ensure_admin
from botyard.orchestrator.browsers import BrowserHost
from botyard.orchestrator.dispatch import AgentDispatcher
from botyard.orchestrator.health import Clock, stale_after, take_snapshot
from botyard.orchestrator.input_rules import InputRules
from botyard.orchestrator.limits import BodySizeLimit
from botyard.orchestrator.prometheus import (
    StoreCollector,
    browser_families,
    registry_for,
    totp_families,
)
from botyard.orchestrator.ratelimit import LoginLimits, RateLimiters
from botyard.orchestrator.routers import (
    audit,
    browsers,
    evidence,
    external,
    health,
    jobs,
    privacy,
    processing,
    scheduler,
    status,
    tokens,
    totp,
    workers,
)
from botyard.orchestrator.scheduler import Maintenance
from botyard.orchestrator.service import JobService
from botyard.settings import Settings
from botyard.totp import TotpManager
from botyard.version import __version__
from botyard.wiring import Runtime, open_credentials, open_runtime, open_totp_ledger

log = logging.getLogger("botyard.api")


def bootstrap_admin(runtime: Runtime) -> None:
    """The first admin: ADMIN_USERNAME / ADMIN_PASSWORD, else a random password shown once."""
    auth = runtime.settings.auth
    password = auth.admin_password.get_secret_value() if auth.admin_password else None
    generated = ensure_admin(runtime.store.users, auth.admin_username, password)
    if generated is None:
        return
    path = runtime.settings.store.data_dir / "admin-password"
    path.touch(mode=0o600)
    path.write_text(generated + "\n")
    print(
        f"\n  Botyard created the admin user {auth.admin_username!r} with the password:\n\n"
        f"      {generated}\n\n  It is shown once (a copy readable only by you is in {path});"
        " set ADMIN_PASSWORD to choose it.\n",
        file=sys.stderr,
        flush=True,
    )


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the API. Without a ``runtime`` one is opened from ``settings`` at start-up."""
    settings = settings or (runtime.settings if runtime else Settings())
    owned = runtime is None
    preflight.check(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync endpoints run in anyio's thread pool. Its default of 40 threads makes every
        # thread wait for the GIL after each database call and overflows the connection pool
        # (connections opened and closed per request); a small pool serves more (docs/benchmarks).
        threads = settings.server.api_threads
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        rt = runtime or open_runtime(settings, pool_size=threads + 4)
        bootstrap_admin(rt)
        service = JobService(
            rt.store,
            rt.bus,
            rt.registry,
            settings.concurrency.limits,
            events=rt.events,
            lists=rt.lists,
        )
        app.state.runtime = rt
        app.state.service = service
        app.state.authenticator = Authenticator(
            rt.store.users,
            secret=settings.auth.secret(settings.store.data_dir),
            algorithm=settings.auth.jwt_algorithm,
            expiry_minutes=settings.auth.jwt_expiration_minutes,
        )
        masker = Masker.from_environment()
        masker.extend(Masker.from_settings(settings, app.state.authenticator.secret))
        install_log_masking(masker)
        dispatcher = AgentDispatcher(service, settings)
        dispatcher.start()
        app.state.dispatcher = dispatcher
        app.state.totp = TotpManager(
            open_credentials(settings, masker),
            open_totp_ledger(settings, rt.store),
            min_validity=settings.credentials.totp_min_validity,
        )
        maintenance = Maintenance(service, settings, dispatcher)
        maintenance.start()
        app.state.maintenance = maintenance
        app.state.clock = Clock()
        app.state.browsers = BrowserHost(
            settings.browser, rt.store, owner=f"orchestrator:{socket.gethostname()}:{os.getpid()}"
        )
        app.state.prometheus = registry_for(
            StoreCollector(
                rt.store.figures,
                lambda: take_snapshot(
                    rt.store,
                    stale_after=stale_after(settings),
                    scheduler_running=bool(maintenance.scheduler.running),
                ),
                extra=[
                    totp_families(app.state.totp.figures),
                    browser_families(rt.store.browsers.figures),
                ],
            )
        )
        try:
            yield
        finally:
            app.state.browsers.close()
            maintenance.shutdown()
            dispatcher.stop()
            if owned:
                rt.close()

    app = FastAPI(
        title="Botyard orchestrator",
        version=__version__,
        description="Jobs for Python automations: submit, watch, retry, resolve.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(InputRules)  # inside the size limit: the body it reads is bounded
    app.add_middleware(BodySizeLimit, max_bytes=settings.server.max_body_bytes)
    app.state.rate_limiters = RateLimiters.from_settings(settings.rate_limits)
    app.state.login_limits = LoginLimits.from_settings(settings.rate_limits)
    if settings.cors.origins:  # added last: outermost, so refusals (413, 429) carry it too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors.origins,
            allow_credentials=settings.cors.allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
            expose_headers=["Retry-After"],
        )
    for router in (
        health.router,
        tokens.router,
        external.router,  # before jobs: /jobs/external is not a job id
        jobs.router,
        workers.router,
        scheduler.router,
        processing.router,
        audit.router,
        status.router,
        evidence.router,
        privacy.router,
        totp.router,
        browsers.router,
    ):
        app.include_router(router)
    dashboard.install(app)
    return app
