"""The demo portal over its real app: login, one-time codes used once, circuits, real HTTP."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient

from botyard.demo import DEMO_ACCOUNT, PortalAccount, create_portal, serve_portal

T0 = 30 * 56_666_667 + 5.0  # 5 s into a time step
STEP = int(T0 // 30)
STRONG = PortalAccount(
    email="noc@example.com",
    password="another-demo-password",
    totp_secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",
    digits=8,
    algorithm="SHA256",
)
ACCOUNTS = {DEMO_ACCOUNT.email: DEMO_ACCOUNT, STRONG.email: STRONG}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def portal(clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_portal(ACCOUNTS, clock=clock)) as client:
        yield client


@pytest.fixture
def second_browser(portal: TestClient) -> Iterator[TestClient]:
    """Another browser (its own cookies) on the same portal: a second job on the same account."""
    with TestClient(portal.app) as client:
        yield client


def code(step: int, account: PortalAccount = DEMO_ACCOUNT) -> str:
    return account.totp().generate_otp(step)


def text(html: str, element_id: str) -> str | None:
    """The text of the element with this id, which holds no other element."""
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', html)
    return found.group(1).strip() if found else None


def sign_in(client: TestClient, account: PortalAccount = DEMO_ACCOUNT) -> httpx.Response:
    response = client.post("/login", data={"email": account.email, "password": account.password})
    assert response.url.path == "/otp"
    return response


def log_in(client: TestClient, step: int = STEP, account: PortalAccount = DEMO_ACCOUNT) -> None:
    sign_in(client, account)
    response = client.post("/otp", data={"code": code(step, account)})
    assert response.status_code == 200, text(response.text, "error")
    assert response.url.path == "/circuits"


def state(client: TestClient, email: str = DEMO_ACCOUNT.email) -> dict[str, int | None]:
    figures: dict[str, int | None] = client.get("/api/state").json()["accounts"][email]
    return figures


def test_login_then_search_then_validate(portal: TestClient) -> None:
    login = portal.get("/")
    assert login.url.path == "/login"
    for element in ("email", "password", "login-button"):
        assert f'id="{element}"' in login.text
    assert '<label for="email">' in login.text
    assert "<title>Sign in · MetroFibre Partner Portal (demo)</title>" in login.text

    otp = sign_in(portal)
    assert 'id="otp-code"' in otp.text and 'id="verify-button"' in otp.text
    log_in_response = portal.post("/otp", data={"code": code(STEP)})
    assert log_in_response.url.path == "/circuits"
    assert 'id="circuit-number"' in log_in_response.text
    assert 'id="search-button"' in log_in_response.text

    found = portal.get("/circuits", params={"q": "ftth-1001 "})
    assert 'id="circuit"' in found.text
    assert text(found.text, "circuit-status") == "pending"
    assert 'id="validate-button"' in found.text
    assert 'href="/circuits/FTTH-1001/cancel"' in found.text

    validated = portal.post("/circuits/FTTH-1001/validate")
    assert validated.status_code == 200
    assert text(validated.text, "result") == "Circuit FTTH-1001 validated"
    reference = text(validated.text, "reference")
    assert reference is not None and re.fullmatch(r"VAL-[0-9A-F]{6}", reference)

    again = portal.post("/circuits/FTTH-1001/validate")
    assert text(again.text, "result") == "Circuit FTTH-1001 was already validated"
    assert text(again.text, "reference") == reference
    assert text(portal.get("/circuits?q=FTTH-1001").text, "circuit-status") == "validated"
    circuits = {c["number"]: c for c in portal.get("/api/state").json()["circuits"]}
    assert circuits["FTTH-1001"]["status"] == "validated"
    assert circuits["FTTH-1001"]["reference"] == reference
    assert len(circuits) == 12 and circuits["FTTH-1012"]["status"] == "pending"


def test_cancel_asks_for_a_confirmation_and_a_reason(portal: TestClient) -> None:
    log_in(portal)
    confirm = portal.get("/circuits/FTTH-1002/cancel")
    for element in ("reason", "confirm-cancel-button", "back-link"):
        assert f'id="{element}"' in confirm.text
    assert '<label for="reason">' in confirm.text

    no_reason = portal.post("/circuits/FTTH-1002/cancel", data={"reason": "  "})
    assert no_reason.status_code == 422
    assert text(no_reason.text, "error") == "A reason is required to cancel a circuit"
    assert text(portal.get("/circuits?q=FTTH-1002").text, "circuit-status") == "pending"

    cancelled = portal.post("/circuits/FTTH-1002/cancel", data={"reason": "customer moved"})
    assert text(cancelled.text, "result") == "Circuit FTTH-1002 cancelled"
    reference = text(cancelled.text, "reference")
    assert reference is not None and re.fullmatch(r"CAN-[0-9A-F]{6}", reference)

    again = portal.post("/circuits/FTTH-1002/cancel", data={"reason": "twice"})
    assert text(again.text, "result") == "Circuit FTTH-1002 was already cancelled"
    assert text(again.text, "reference") == reference
    refused = portal.post("/circuits/FTTH-1002/validate")
    assert refused.status_code == 409 and text(refused.text, "error") is not None
    after = portal.get("/circuits?q=FTTH-1002").text
    assert text(after, "circuit-status") == "cancelled" and 'id="validate-button"' not in after


def test_a_wrong_password_or_email_shows_the_form_again(portal: TestClient) -> None:
    for email, password in [(DEMO_ACCOUNT.email, "wrong"), ("nobody@example.com", "x"), ("", "")]:
        response = portal.post("/login", data={"email": email, "password": password})
        assert response.status_code == 401
        assert response.url.path == "/login"
        assert text(response.text, "error") == "Invalid email or password"
        assert 'id="email"' in response.text
    assert not portal.cookies
    assert portal.get("/otp").url.path == "/login"


def test_a_wrong_code_is_refused_and_the_right_one_then_works(portal: TestClient) -> None:
    sign_in(portal)
    for wrong in ("000000", code(STEP - 2), code(STEP + 1), "abc", ""):
        response = portal.post("/otp", data={"code": wrong})
        assert response.status_code == 401
        assert text(response.text, "error") == "Invalid verification code"
    assert portal.get("/circuits").url.path == "/login"  # still waiting for the code
    log_in_response = portal.post("/otp", data={"code": code(STEP)})
    assert log_in_response.url.path == "/circuits"
    assert state(portal) == {"logins": 1, "last_step": STEP, "rejected_codes": 5}


def test_the_same_code_is_refused_the_second_time(
    portal: TestClient, second_browser: TestClient
) -> None:
    log_in(portal)
    sign_in(second_browser)
    reused = second_browser.post("/otp", data={"code": code(STEP)})
    assert reused.status_code == 401
    assert text(reused.text, "error") == "This code has already been used"
    assert second_browser.get("/circuits").url.path == "/login"
    assert state(portal) == {"logins": 1, "last_step": STEP, "rejected_codes": 1}


def test_an_older_step_after_a_newer_one_is_refused(
    portal: TestClient, second_browser: TestClient
) -> None:
    log_in(portal, STEP)
    sign_in(second_browser)
    older = second_browser.post("/otp", data={"code": code(STEP - 1)})  # still in the window
    assert older.status_code == 401
    assert text(older.text, "error") == "This code has already been used"


def test_the_previous_step_is_accepted_while_no_newer_one_was_used(portal: TestClient) -> None:
    log_in(portal, STEP - 1)
    assert state(portal)["last_step"] == STEP - 1


def test_two_consecutive_steps_are_both_accepted(
    portal: TestClient, second_browser: TestClient, clock: Clock
) -> None:
    log_in(portal, STEP)
    clock.now += 30
    log_in(second_browser, STEP + 1)
    assert state(portal) == {"logins": 2, "last_step": STEP + 1, "rejected_codes": 0}
    assert portal.get("/circuits").url.path == "/circuits"
    assert second_browser.get("/circuits").url.path == "/circuits"


def test_pages_need_a_logged_in_session(portal: TestClient) -> None:
    for path in ("/circuits", "/circuits?q=FTTH-1001", "/circuits/FTTH-1003/cancel", "/otp"):
        response = portal.get(path)
        assert response.url.path == "/login", path
    for path in ("/circuits/FTTH-1003/validate", "/circuits/FTTH-1003/cancel", "/otp"):
        response = portal.post(path, data={"reason": "r", "code": "123456"})
        assert response.url.path == "/login", path
    portal.cookies.set("portal_session", "made-up")
    assert portal.get("/circuits").url.path == "/login"
    assert all(c["status"] == "pending" for c in portal.get("/api/state").json()["circuits"])


def test_sessions_are_http_only_cookies_renewed_at_each_step(portal: TestClient) -> None:
    response = portal.post(
        "/login",
        data={"email": DEMO_ACCOUNT.email, "password": DEMO_ACCOUNT.password},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/otp"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    pending = portal.cookies["portal_session"]
    portal.post("/otp", data={"code": code(STEP)})
    verified = portal.cookies["portal_session"]
    assert verified != pending and len(verified) >= 32

    portal.post("/logout")
    assert portal.get("/circuits").url.path == "/login"
    portal.cookies.set("portal_session", verified)  # a copied cookie dies with the logout
    assert portal.get("/circuits").url.path == "/login"


def test_an_unknown_circuit_is_not_found(portal: TestClient) -> None:
    log_in(portal)
    search = portal.get("/circuits", params={"q": "FTTH-404"})
    assert search.status_code == 200
    assert text(search.text, "not-found") == "No circuit FTTH-404 was found."
    assert 'id="circuit"' not in search.text
    assert portal.post("/circuits/FTTH-404/validate").status_code == 404
    assert portal.get("/circuits/FTTH-404/cancel").status_code == 404
    assert portal.post("/circuits/FTTH-404/cancel", data={"reason": "r"}).status_code == 404


def test_no_password_or_secret_leaves_the_portal(portal: TestClient) -> None:
    log_in(portal)
    body = portal.get("/api/state").text
    pages = [portal.get(path).text for path in ("/login", "/circuits", "/circuits?q=FTTH-1001")]
    for account in ACCOUNTS.values():
        for secret in (account.password, account.totp_secret):
            assert secret not in body
            assert all(secret not in page for page in pages)
            assert secret not in repr(account)
    figures = portal.get("/api/state").json()["accounts"]
    assert set(figures) == set(ACCOUNTS)
    assert set(figures[DEMO_ACCOUNT.email]) == {"logins", "last_step", "rejected_codes"}


def test_a_sha256_account_with_eight_digits(portal: TestClient) -> None:
    sign_in(portal, STRONG)
    six = portal.post("/otp", data={"code": code(STEP, STRONG)[:6]})
    assert six.status_code == 401
    expected = pyotp.TOTP(STRONG.totp_secret, digits=8, digest=hashlib.sha256).at(T0)
    assert code(STEP, STRONG) == expected
    assert portal.post("/otp", data={"code": expected}).url.path == "/circuits"
    assert state(portal, STRONG.email)["logins"] == 1
    assert state(portal)["logins"] == 0  # the other account's steps are its own


def test_accounts_are_checked_when_the_portal_is_made() -> None:
    with pytest.raises(ValueError, match="filed under"):
        create_portal({"someone@example.com": DEMO_ACCOUNT})
    with pytest.raises(ValueError, match="algorithm"):
        PortalAccount("a@example.com", "p", DEMO_ACCOUNT.totp_secret, algorithm="MD5")
    with pytest.raises(ValueError, match="base32"):
        PortalAccount("a@example.com", "p", "not base32!")


def test_over_real_http_one_code_wins_among_concurrent_logins() -> None:
    clock = Clock(T0)
    url, stop = serve_portal(ACCOUNTS, clock=clock)
    try:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        outcomes: list[int] = []

        def attempt() -> None:
            with httpx.Client(base_url=url) as browser:
                signed = browser.post(
                    "/login", data={"email": DEMO_ACCOUNT.email, "password": DEMO_ACCOUNT.password}
                )
                assert signed.headers["location"] == "/otp"
                outcomes.append(browser.post("/otp", data={"code": code(STEP)}).status_code)

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == [303] + [401] * 7

        clock.now += 30
        with httpx.Client(base_url=url, follow_redirects=True) as browser:
            browser.post(
                "/login", data={"email": DEMO_ACCOUNT.email, "password": DEMO_ACCOUNT.password}
            )
            assert browser.post("/otp", data={"code": code(STEP + 1)}).url.path == "/circuits"
            found = browser.get("/circuits", params={"q": "FTTH-1005"})
            assert text(found.text, "circuit-status") == "pending"
            done = browser.post("/circuits/FTTH-1005/validate")
            assert text(done.text, "result") == "Circuit FTTH-1005 validated"
        assert httpx.get(f"{url}/api/state").json()["accounts"][DEMO_ACCOUNT.email] == {
            "logins": 2,
            "last_step": STEP + 1,
            "rejected_codes": 7,
        }
    finally:
        stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")
