"""The bundled demo: automations that show retries, needs_review and business errors, and the
MetroFibre demo portal they can drive in a real browser.

The automations live in ``botyard.demo.automations``, imported on purpose by the workers that
run them; importing this package does not register them. The portal's web stack (FastAPI,
Jinja2, uvicorn) is imported on first use, so that a job importing the automations does not
pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from botyard.demo.accounts import DEMO_ACCOUNT, PortalAccount
from botyard.demo.circuits import Circuit

if TYPE_CHECKING:
    from botyard.demo.portal import PortalState, create_portal
    from botyard.demo.server import PortalNotStarted, serve_portal

_LAZY = {
    "PortalState": "botyard.demo.portal",
    "create_portal": "botyard.demo.portal",
    "PortalNotStarted": "botyard.demo.server",
    "serve_portal": "botyard.demo.server",
}

__all__ = [
    "DEMO_ACCOUNT",
    "Circuit",
    "PortalAccount",
    "PortalNotStarted",
    "PortalState",
    "create_portal",
    "serve_portal",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
