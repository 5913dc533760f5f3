"""Serving the demo portal over real HTTP from a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import uvicorn

from botyard.demo.accounts import PortalAccount
from botyard.demo.portal import create_portal
from botyard.errors import BotyardError

STARTUP_TIMEOUT = 10.0


class PortalNotStarted(BotyardError):
    """The demo portal did not start accepting connections."""


def serve_portal(
    accounts: dict[str, PortalAccount],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] = time.time,
) -> tuple[str, Callable[[], None]]:
    """Serve a new portal until the returned function is called; its base URL and that function.

    ``port=0`` picks a free port. Returns once the portal accepts connections.
    """
    server = uvicorn.Server(
        uvicorn.Config(
            create_portal(accounts, clock=clock),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
    )
    # A daemon, so that a caller that never stops it can still exit; stop() shuts down cleanly.
    thread = threading.Thread(target=server.run, name="demo-portal", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT)
            raise PortalNotStarted(host=host, port=port)
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"

    def stop() -> None:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)

    return url, stop
