"""Automations the acceptance tests run through real `botyard` processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import botyard.demo.automations  # noqa: F401  (the demo portal's automations, for its tests)
from botyard import JobContext, automation


@automation("accept.sleepy", idempotent=False, max_attempts=3, timeout=120)
def sleepy(ctx: JobContext, seconds: float, marker_dir: str = "") -> dict[str, int]:
    """Sleeps; writes a marker per attempt so tests can see which attempts started."""
    if marker_dir:
        Path(marker_dir, f"{ctx.job_id}-{ctx.attempt}.started").touch()
    time.sleep(seconds)
    return {"attempt": ctx.attempt}


@automation("accept.cancel_circuit", idempotent=False, max_attempts=3, timeout=120)
def cancel_circuit(ctx: JobContext, marker_dir: str) -> None:
    """Enters a side effect and then hangs there until the test kills the worker."""
    with ctx.side_effect("cancel circuit"):
        Path(marker_dir, f"{ctx.job_id}-{ctx.attempt}.side_effect").touch()
        time.sleep(120)


@automation("accept.quick", idempotent=True, timeout=30)
def quick(ctx: JobContext, n: int) -> dict[str, int]:
    ctx.log.info("quick job %d", n)
    return {"n": n}


@automation("accept.evidence", idempotent=True, timeout=30)
def evidence(ctx: JobContext, text: str) -> dict[str, str]:
    with ctx.step("capture"):
        ctx.log.info("keeping %s", text)
        ctx.attach("capture.txt", text)
    return {"kept": text}


@automation("accept.totp", timeout=60)
def totp_login(ctx: JobContext) -> dict[str, str]:
    """Asks the orchestrator for two codes, as a login that needs a second try would."""
    first = ctx.totp("accept")
    ctx.totp_consumed(False)
    second = ctx.totp("accept")
    ctx.totp_consumed(True)
    return {"first": first, "second": second}


_PAGE = "data:text/html,<title>Botyard</title><h1 id='greeting'>Hello {name}</h1>"


@automation("accept.page", idempotent=True, timeout=60, browser="playwright")
def page_title(ctx: JobContext, name: str) -> dict[str, str]:
    """Opens a page in the job's Playwright browser and keeps a screenshot of it."""
    with ctx.step("open page"):
        ctx.page.goto(_PAGE.format(name=name))
        ctx.screenshot("greeting")
    return {"title": ctx.page.title(), "greeting": ctx.page.inner_text("#greeting")}


@automation("accept.selenium", idempotent=True, timeout=60, browser="selenium")
def selenium_title(ctx: JobContext, name: str) -> dict[str, str]:
    """The same page through chromedriver."""
    from selenium.webdriver.common.by import By

    ctx.driver.get(_PAGE.format(name=name))
    ctx.screenshot("greeting")
    return {"title": ctx.driver.title, "greeting": ctx.driver.find_element(By.ID, "greeting").text}


@automation("accept.page_fails", idempotent=True, max_attempts=1, timeout=60, browser="playwright")
def page_fails(ctx: JobContext, name: str) -> None:
    """Fails on a page: the failure screenshot and HTML are kept."""
    with ctx.step("look for a missing button"):
        ctx.page.goto(_PAGE.format(name=name) + "<input id=password>")
        secret = ctx.credentials.get_secret("ACCEPT_PORTAL_PASSWORD")
        if secret is not None:  # typed into the page: the trace records it
            ctx.page.fill("#password", secret.get_secret_value())
        raise RuntimeError("no submit button on the page")


@automation("accept.page_hangs", idempotent=True, max_attempts=1, timeout=120, browser="playwright")
def page_hangs(ctx: JobContext, marker_dir: str) -> None:
    """Holds its browser open until the test cancels the job."""
    ctx.page.goto(_PAGE.format(name="hang"))
    Path(marker_dir, f"{ctx.job_id}.browser").write_text(str(ctx.browser.describe()))
    time.sleep(120)


@automation("accept.leaky", idempotent=True, max_attempts=1, timeout=30)
def leaky(ctx: JobContext, fail: bool = False) -> dict[str, str]:
    """Tries to leak a secret everywhere a job can write; Botyard masks it."""
    secret = ctx.credentials.get_secret("ACCEPT_API_KEY", required=True)
    assert secret is not None
    value = secret.get_secret_value()
    ctx.log.info("calling the API with key %s", value)
    print(f"key={value}")
    ctx.attach("request.txt", f"Authorization: {value}\n")
    if fail:
        raise RuntimeError(f"the API refused key {value}")
    return {"echo": value, "nested": [{"key": value}]}


@automation("accept.tally", idempotent=True, timeout=30)
def tally(ctx: JobContext, path: str) -> dict[str, int]:
    """Appends "<job id> <attempt> <worker pid>" to ``path`` in one O_APPEND write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{ctx.job_id} {ctx.attempt} {os.getppid()}\n".encode())
    finally:
        os.close(fd)
    return {"attempt": ctx.attempt}


@automation("accept.peek_at_worker", idempotent=True, timeout=30)
def peek_at_worker(ctx: JobContext) -> dict[str, bool]:
    """Reads the environment of its worker (the parent of its supervisor), as a job that
    wanted the worker's token would: whether it could, and whether the token was there."""
    import psutil

    worker = psutil.Process().parent().parent()
    try:
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes()
    except PermissionError:
        return {"read": False, "token": False}
    return {"read": True, "token": b"BOTYARD_WORKER_TOKEN" in environ}
