"""The web dashboard at ``/ui``: server-rendered pages for the people who watch the robots."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from botyard.dashboard.pages import router


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages and its own static files (no third-party ones)."""
    app.include_router(router)
    static = Path(__file__).with_name("static")
    app.mount("/ui/static", StaticFiles(directory=static), name="ui-static")


__all__ = ["install"]
