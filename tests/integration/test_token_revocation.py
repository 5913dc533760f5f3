"""Tokens end when their user changes: logout, deletion and re-creation, a new role or password.

Each token carries its user's id and token version; the server checks both (issue 13, item 7).
Also: what a failed login records as its actor (item 8), and passwords over bcrypt's 72 bytes
(item 9).
"""

from __future__ import annotations

import re

import bcrypt
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.api_helpers import MakeApi, token

from botyard.orchestrator.auth import Role
from botyard.orchestrator.users import UserAdmin
from botyard.store.tables import users

LONG = "correct horse battery staple " * 3  # 87 bytes: over bcrypt's 72


def _admin(api: TestClient) -> UserAdmin:
    state = api.app.state  # type: ignore[attr-defined]
    store = state.runtime.store
    return UserAdmin(store.users, store.audit, state.authenticator)


def _ui_login(api: TestClient, username: str, password: str) -> tuple[str, str]:
    """The session cookie's value and the CSRF token of the pages."""
    answer = api.post(
        "/ui/login", data={"username": username, "password": password}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    found = re.search(r'name="csrf" value="([^"]+)"', api.get("/ui/jobs").text)
    assert found
    return api.cookies["botyard_session"], found.group(1)


def test_logout_ends_the_cookie_and_every_bearer_of_the_user(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url)
    _admin(api).add("olivia", "operator-pw", Role.OPERATOR, actor="test")
    cookie, csrf = _ui_login(api, "olivia", "operator-pw")
    bearer = token(api, "olivia", "operator-pw")
    as_cookie = {"Authorization": f"Bearer {cookie}"}
    for headers in (bearer, as_cookie):
        assert api.get("/jobs", headers=headers).status_code == 200

    out = api.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    api.cookies.set("botyard_session", cookie, path="/ui")  # a copy of the old cookie
    page = api.get("/ui/jobs", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    for headers in (bearer, as_cookie):
        assert api.get("/jobs", headers=headers).status_code == 401
    assert api.get("/jobs", headers=token(api, "olivia", "operator-pw")).status_code == 200


def test_a_user_deleted_and_created_again_does_not_inherit_old_tokens(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url)
    admin = _admin(api)
    admin.add("olivia", "operator-pw", Role.OPERATOR, actor="test")
    old = token(api, "olivia", "operator-pw")
    admin.delete("olivia", actor="test")
    admin.add("olivia", "another-pw", Role.ADMIN, actor="test")
    assert api.get("/audit", headers=old).status_code == 401
    assert api.get("/jobs", headers=old).status_code == 401
    assert api.get("/audit", headers=token(api, "olivia", "another-pw")).status_code == 200


def test_the_last_user_created_again_gets_a_new_id(make_api: MakeApi, store_url: str) -> None:
    # SQLite reuses the largest rowid unless the table is AUTOINCREMENT: a token names its
    # user by id, so ids must never come back.
    api = make_api(store_url)
    admin = _admin(api)
    first = admin.add("zed", "zed-password", Role.VIEWER, actor="test")
    admin.delete("zed", actor="test")
    assert admin.add("zed", "zed-password", Role.VIEWER, actor="test").id > first.id


def test_role_and_password_changes_and_disabling_end_old_tokens(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url)
    admin = _admin(api)
    admin.add("vera", "viewer-pw", Role.VIEWER, actor="test")
    for change in (
        lambda: admin.set_role("vera", Role.OPERATOR, actor="test"),
        lambda: admin.set_password("vera", "viewer-pw", actor="test"),  # even the same one
        lambda: admin.disable("vera", actor="test"),
    ):
        before = token(api, "vera", "viewer-pw")
        assert api.get("/jobs", headers=before).status_code == 200
        change()
        assert api.get("/jobs", headers=before).status_code == 401
    assert api.post("/token", data={"username": "vera", "password": "viewer-pw"}).status_code == 401
    admin.enable("vera", actor="test")
    assert api.get("/jobs", headers=token(api, "vera", "viewer-pw")).status_code == 200
    actions = [
        e["action"]
        for e in api.get("/audit", headers=token(api, "admin", "admin-password")).json()["items"]
    ]
    for action in ("user_role_changed", "user_password_changed", "user_disabled", "user_enabled"):
        assert action in actions


def test_enabling_a_user_ends_none_of_its_tokens_and_revives_none(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url)
    admin = _admin(api)
    admin.add("vera", "viewer-pw", Role.VIEWER, actor="test")
    live = token(api, "vera", "viewer-pw")
    admin.enable("vera", actor="test")  # she was never disabled
    assert api.get("/jobs", headers=live).status_code == 200  # before: 401, logged out
    admin.disable("vera", actor="test")
    admin.enable("vera", actor="test")
    assert api.get("/jobs", headers=live).status_code == 401  # disabling ended it for good


def test_a_failed_login_names_its_actor_only_when_the_user_exists(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url)
    typed_password = "Sup3r-Secret-Typed-Into-The-Username"
    assert api.post("/token", data={"username": typed_password, "password": "x"}).status_code == 401
    assert api.post("/token", data={"username": "admin", "password": "wrong"}).status_code == 401
    ui = api.post("/ui/login", data={"username": typed_password, "password": "x"})
    assert ui.status_code == 401
    answer = api.get("/audit", headers=token(api, "admin", "admin-password"))
    assert typed_password not in answer.text
    failed = [e["actor"] for e in answer.json()["items"] if e["action"] == "login_failed"]
    assert sorted(failed) == ["admin", "unknown user", "unknown user"]


def test_passwords_over_72_bytes_log_in_and_bcrypt_hashes_are_upgraded(
    make_api: MakeApi, store_url: str
) -> None:
    api = make_api(store_url, ADMIN_PASSWORD=LONG)  # 87 bytes: exit 3 at start-up before
    assert api.get("/jobs", headers=token(api, "admin", LONG)).status_code == 200
    wrong = api.post("/token", data={"username": "admin", "password": LONG + "x"})
    assert wrong.status_code == 401  # was 500 (bcrypt refuses more than 72 bytes)

    store = api.app.state.runtime.store  # type: ignore[attr-defined]
    legacy = bcrypt.hashpw(b"old-bcrypt-pw", bcrypt.gensalt(4)).decode()
    store.users.create("old", legacy, Role.VIEWER.value)
    assert api.post("/token", data={"username": "old", "password": LONG}).status_code == 401
    assert api.get("/jobs", headers=token(api, "old", "old-bcrypt-pw")).status_code == 200
    with store.engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.username == "old"))
        assert stored.scalar_one().startswith("$argon2id$")  # re-hashed at the login
    assert api.get("/jobs", headers=token(api, "old", "old-bcrypt-pw")).status_code == 200


def test_the_dashboard_login_shares_the_api_s_failed_login_limit(make_api: MakeApi) -> None:
    api = make_api(TOKEN_RATE_LIMIT="2/minute")
    form = {"username": "admin", "password": "wrong"}
    assert [api.post("/ui/login", data=form).status_code for _ in range(2)] == [401, 401]
    refused = api.post("/ui/login", data=form)
    assert refused.status_code == 429 and "text/html" in refused.headers["content-type"]
    assert api.post("/token", data={**form, "password": "admin-password"}).status_code == 429
