"""Automations of the job-credential tests, loaded in the worker's children by file path."""

from __future__ import annotations

import os
from typing import Any

from botyard import JobContext, automation


@automation("creds.environment", max_attempts=1)
def environment(ctx: JobContext) -> list[str]:
    """The names in the job's environment."""
    return sorted(os.environ)


@automation("creds.totp", max_attempts=1)
def totp(ctx: JobContext) -> dict[str, Any]:
    code = ctx.totp("demo")
    ctx.totp_consumed(True)
    return {"code": code}


@automation("creds.echo", max_attempts=1)
def echo(ctx: JobContext, text: str) -> dict[str, str]:
    """Writes ``text`` in its log and its result."""
    ctx.log.info("echo %s", text)
    print(text)
    return {"echo": text}
