"""Demo automations bundled with Botyard, used by ``botyard demo`` and ``botyard up``."""

from __future__ import annotations

import os
import time
from typing import Any

from botyard import BusinessError, JobContext, automation


@automation("demo.hello", idempotent=True, timeout=60)
def hello(ctx: JobContext, name: str = "world", delay: float = 0.2) -> dict[str, str]:
    """Greets, after a short pause."""
    with ctx.step("greeting"):
        time.sleep(delay)
        ctx.log.info("hello, %s", name)
    return {"greeting": f"hello, {name}"}


@automation("demo.flaky", idempotent=True, max_attempts=3, timeout=60)
def flaky(ctx: JobContext, circuit_number: str) -> dict[str, str]:
    """Fails on its first attempt (a portal hiccup) and succeeds on the retry."""
    with ctx.step("logging in"):
        time.sleep(0.2)
        if ctx.attempt == 1:
            raise ConnectionError("portal timed out while logging in")
    with ctx.step("validating"):
        ctx.log.info("circuit %s is valid", circuit_number)
    return {"circuit_number": circuit_number, "status": "valid"}


@automation("demo.interrupted", timeout=60)
def interrupted(ctx: JobContext, circuit_number: str) -> None:
    """Starts cancelling a circuit and then loses its process: nobody knows if it happened."""
    with ctx.step("finding the circuit"):
        time.sleep(0.2)
    ctx.attach("before-cancel.txt", f"circuit {circuit_number} found, status active\n")
    with ctx.side_effect(f"cancel circuit {circuit_number}"):
        ctx.log.warning("the portal stopped answering mid-cancel")
        os._exit(1)  # the worker sees a crash after the side effect began


@automation("demo.lookup", timeout=60)
def lookup(ctx: JobContext, circuit_number: str) -> None:
    """Looks up a circuit that does not exist: a business error, never retried."""
    with ctx.step("searching"):
        time.sleep(0.2)
    raise BusinessError(f"circuit {circuit_number} does not exist on the portal")


# -- the MetroFibre demo portal, driven in a real browser ----------------------------------------

PROVIDER = "metrofiber"  # METROFIBER_* variables name the accounts


def _portal_login(ctx: JobContext, account: str) -> Any:
    """Log in with the account's password and a fresh TOTP code from the orchestrator."""
    creds = ctx.credentials.get_provider_credentials(PROVIDER, account)
    url = ctx.credentials.get("METROFIBER_PORTAL_URL", "http://127.0.0.1:8630")
    if creds.username is None or creds.password is None:
        raise BusinessError(f"no {PROVIDER} credentials for account {account!r}")
    page = ctx.page
    with ctx.step("logging in"):
        page.goto(f"{url}/login")
        page.fill("#email", creds.username)
        page.fill("#password", creds.password.get_secret_value())
        page.click("#login-button")
        if page.locator("#error").count():
            raise BusinessError(f"the portal refused the login: {page.inner_text('#error')}")
    with ctx.step("two-factor code"):
        page.fill("#otp-code", ctx.totp(PROVIDER, account))
        page.click("#verify-button")
        accepted = page.locator("#error").count() == 0
        ctx.totp_consumed(accepted)
        if not accepted:  # a code refused now may be accepted on a retry with the next one
            raise RuntimeError(f"the portal refused the code: {page.inner_text('#error')}")
        ctx.screenshot("logged-in")
    return page


def _open_circuit(ctx: JobContext, page: Any, circuit_number: str) -> str:
    with ctx.step("circuit search"):
        page.fill("#circuit-number", circuit_number)
        page.click("#search-button")
        if page.locator("#not-found").count():
            raise BusinessError(f"circuit {circuit_number} does not exist on the portal")
        status: str = page.inner_text("#circuit-status").strip()
        ctx.screenshot("circuit")
        return status


@automation(
    "metrofiber.validation",
    idempotent=True,  # validating twice changes nothing: the portal keeps one reference
    max_attempts=3,
    timeout=180,
    browser="playwright",
    concurrency_key=PROVIDER + ":{account}",
)
def validation(ctx: JobContext, circuit_number: str, account: str = "ops1") -> dict[str, str]:
    """Logs in to the demo portal (password, then TOTP) and validates a circuit."""
    page = _portal_login(ctx, account)
    before = _open_circuit(ctx, page, circuit_number)
    with ctx.step("validating"):
        page.click("#validate-button")
        reference = page.inner_text("#reference").strip()
        ctx.screenshot("validated")
    return {"circuit_number": circuit_number, "status_before": before, "reference": reference}


@automation(
    "metrofiber.cancellation",
    max_attempts=3,
    timeout=180,
    browser="playwright",
    concurrency_key=PROVIDER + ":{account}",
)
def cancellation(
    ctx: JobContext, circuit_number: str, reason: str, account: str = "ops1"
) -> dict[str, str]:
    """Cancels a circuit, confirming on the portal's second page; a side effect."""
    page = _portal_login(ctx, account)
    before = _open_circuit(ctx, page, circuit_number)
    with ctx.step("confirming"):
        page.click("#cancel-button")
        page.fill("#reason", reason)
        ctx.screenshot("confirm-cancel")
    with ctx.side_effect(f"cancel circuit {circuit_number}"):
        page.click("#confirm-cancel-button")
        reference = page.inner_text("#reference").strip()
        ctx.screenshot("cancelled")
    return {"circuit_number": circuit_number, "status_before": before, "reference": reference}
