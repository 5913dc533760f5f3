"""Pick the bus that fits the store."""

from __future__ import annotations

from sqlalchemy import make_url

from botyard.bus.base import Bus
from botyard.bus.local import LocalBus, socket_dir_for


def open_bus(store_url: str) -> Bus:
    url = make_url(store_url)
    if url.get_backend_name() == "postgresql":
        from botyard.bus.postgres import PostgresBus

        return PostgresBus(store_url)
    return LocalBus(socket_dir_for(url.database or "botyard.db"))
